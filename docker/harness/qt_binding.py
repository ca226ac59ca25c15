"""One face for the four Qt bindings the image carries, for the harness.

PyQt5, PyQt6, PySide2 and PySide6 differ in small ways that the harness
would otherwise trip over: Qt 6 moved `QAction` and `QShortcut` from
QtWidgets to QtGui, PyQt6 only accepts scoped enums (`Qt.Key.Key_Return`)
while PySide2 and PyQt5 know the unscoped ones best, the event loop is
`exec_` in some and `exec` in others, and signals are `pyqtSignal` or
`Signal`. Loaded by path (the harness takes its own folder off sys.path),
so it never sits on the candidate's sys.path.
"""

import importlib

NAMES = ("PyQt5", "PyQt6", "PySide2", "PySide6")


class Binding:
    def __init__(self, name):
        if name not in NAMES:
            raise ValueError(f"unknown Qt binding {name!r}; one of {', '.join(NAMES)}")
        self.name = name
        self.QtCore = importlib.import_module(name + ".QtCore")
        self.QtGui = importlib.import_module(name + ".QtGui")
        self.QtWidgets = importlib.import_module(name + ".QtWidgets")
        self.QtTest = importlib.import_module(name + ".QtTest")
        self.QTest = self.QtTest.QTest
        self.Qt = self.QtCore.Qt
        self.QAction = getattr(self.QtGui, "QAction", None) or self.QtWidgets.QAction
        self.QShortcut = getattr(self.QtGui, "QShortcut", None) or self.QtWidgets.QShortcut
        self.Signal = getattr(self.QtCore, "pyqtSignal", None) or getattr(self.QtCore, "Signal")
        # The event loop's entry points this binding has (both in some).
        self.exec_names = [n for n in ("exec_", "exec") if hasattr(self.QtCore.QCoreApplication, n)]
        # Our own reference: the candidate may rebind QTest's functions.
        self._key_click = self.QTest.keyClick

    def enum(self, owner, scope, member):
        """`owner.scope.member` (scoped, Qt 6 style), else `owner.member`."""
        scoped = getattr(getattr(owner, scope, None), member, None)
        return scoped if scoped is not None else getattr(owner, member)

    def associated_widgets(self, action):
        """The menus, tool bars and windows an action was added to (Qt 6
        renamed this `associatedObjects` and widened it to any QObject)."""
        if hasattr(action, "associatedWidgets"):
            return list(action.associatedWidgets())
        return [o for o in action.associatedObjects() if isinstance(o, self.QtWidgets.QWidget)]

    def version(self):
        """`PyQt6 6.4.2, Qt 6.4.2`: the binding's version and Qt's."""
        core = self.QtCore
        own = getattr(core, "PYQT_VERSION_STR", None) or getattr(importlib.import_module(self.name), "__version__", "?")
        return f"{self.name} {own}, Qt {core.qVersion()}"

    def key_sequence_text(self, sequence):
        """A QKeySequence as a person writes it (`Ctrl+L`)."""
        portable = self.enum(self.QtGui.QKeySequence, "SequenceFormat", "PortableText")
        return sequence.toString(portable)

    def press_key_sequence(self, widget, sequence):
        """Types each chord of `sequence` into `widget` through QTest."""
        for index in range(sequence.count()):
            chord = sequence[index]
            if hasattr(chord, "key"):  # Qt 6: a QKeyCombination
                key, modifiers = chord.key(), chord.keyboardModifiers()
            else:  # Qt 5: key | modifiers in one int
                chord = int(chord)
                mask = int(self.enum(self.Qt, "KeyboardModifier", "KeyboardModifierMask"))
                key = self.Qt.Key(chord & ~mask) if self.name == "PySide2" else chord & ~mask
                modifiers = self.Qt.KeyboardModifiers(chord & mask) if hasattr(self.Qt, "KeyboardModifiers") else chord & mask
            self._key_click(widget, key, modifiers)


def load(name):
    return Binding(name)
