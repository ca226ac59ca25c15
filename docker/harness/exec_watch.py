"""Programs the candidate starts, seen from the supervisor's process.

The kernel reports every open of a file in a watched folder to an inotify
descriptor (an exec opens the program, a script's exec also opens its
interpreter). The supervisor watches the folders programs live in from its
own process: the candidate can neither see nor silence the watch. The
dynamic loader is not watched: on engines where the containers share a
volume holding /usr/lib (sandbox/lib_volume.rs), its inode is shared too,
and every container's starts would show in every watch.

Programs also live below /usr/lib (apt's helpers, udev's, glib's …): the
folders there that hold program files (an exec bit, not a shared library,
not Python's) are watched too, and only opens of those files count. Where
/usr/lib is the container's own (its own mount of the image) an open there
is this container's. Where it is the volume other containers share, an
open seen there is counted only once a process of this container (its
/proc) is found running a program of that name, looked for during
CONFIRM_S; a start renamed on the way (a symlink to the program, an
exec of a descriptor) or ended at once may then be missed: the static
scan names such starts from the code (harm.rs, `shell_program`).

Started when the job is handed to the harness, so the harness's own start
is never counted (nothing of the judge starts a program after that). Where
inotify is unavailable the watch says so and the host has no evidence of
this kind: it can only ever add a failure, never make a pass.
"""

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time

IN_OPEN = 0x00000020
IN_Q_OVERFLOW = 0x00004000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
# Where Debian keeps programs (/bin and /sbin are links into /usr).
PROGRAM_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/libexec")
# Opens kept in order (what the app started first); every open is also
# counted per program, so a start past the ordered window is never lost.
MAX_OPENS = 64
# Past this many different programs the count is an overflow: the folders
# hold fewer, and the result line stays small.
MAX_PROGRAMS = 2048
EVENT_HEADER = struct.Struct("iIII")
# Below /usr/lib: where programs are looked for (Python's folders hold no
# program a start would run, and thousands of modules), and how many
# folders of them are watched at most.
LIB_ROOT = "/usr/lib"
LIB_SKIPPED = ("python",)
MAX_LIB_DIRS = 64
# How long a start seen on a shared /usr/lib is looked for in /proc.
CONFIRM_S = 0.5


def lib_programs(root=LIB_ROOT):
    """{folder: {program file names}} below `root`: regular files with an
    exec bit that are not shared libraries."""
    found = {}
    for folder, dirs, files in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if not d.startswith(LIB_SKIPPED)]
        for name in files:
            if ".so" in name or name.endswith((".py", ".pyc")):
                continue
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
                found.setdefault(folder, set()).add(name)
        if len(found) >= MAX_LIB_DIRS:
            break
    return found


def lib_shared(root=LIB_ROOT):
    """Whether `root` is a mount of its own (the shared volume) rather than
    part of the container's root file system."""
    try:
        return os.path.ismount(root) or os.stat(root).st_dev != os.stat("/").st_dev
    except OSError:
        return True


def running_here(name):
    """Whether a process of this container's /proc runs a program called
    `name` (the kernel's name of a process: the file's name, 15 bytes)."""
    comm = name.encode()[:15]
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    # The supervisor, whose name is a shell's, and the container's init,
    # named as a desktop's.
    own = (str(os.getpid()), "1")
    for pid in pids:
        if pid in own:
            continue
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                if f.read().rstrip(b"\n") == comm:
                    return True
        except OSError:
            continue
    return False


class ExecWatch:
    """Watches from construction until `stop()`.

    A thread of the supervisor drains the kernel's queue as events come
    (the candidate runs at the lowest CPU priority, so it cannot outrun it
    to overflow the queue and hide a later start; an overflow is reported
    as such and the host treats it as a hidden start)."""

    def __init__(self):
        self.error = None
        self._watches = {}
        self._fd = -1
        self._opens, self._counts, self._total, self._overflow = [], {}, 0, False
        # Watched folders below /usr/lib: their program files, and whether
        # an open there must be confirmed in /proc (a shared volume).
        self._lib = {}
        self._lib_shared = False
        self._lock = threading.Lock()
        self._pending = {}
        self._unconfirmed = []
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self._fd = libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
            if self._fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            for path in PROGRAM_DIRS:
                if not os.path.exists(path):
                    continue
                wd = libc.inotify_add_watch(self._fd, path.encode(), IN_OPEN)
                if wd >= 0:
                    self._watches[wd] = path
            self._lib_shared = lib_shared()
            for path, names in lib_programs().items():
                wd = libc.inotify_add_watch(self._fd, path.encode(), IN_OPEN)
                if wd >= 0:
                    self._watches[wd] = path
                    self._lib[path] = names
        except (OSError, AttributeError) as error:
            self.error = f"no inotify: {error}"
            return
        if not self._watches:
            self.error = "no program folder could be watched"
            return
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            self._drain()
            if self._wake_read in ready:
                return

    def _drain(self):
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except OSError:
                return
            if not data:
                return
            offset = 0
            while offset + EVENT_HEADER.size <= len(data):
                wd, mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
                start = offset + EVENT_HEADER.size
                raw = data[start : start + length]
                offset = start + length
                if mask & IN_Q_OVERFLOW:
                    self._overflow = True
                    continue
                where = self._watches.get(wd)
                if where is None:
                    continue
                name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                what = os.path.join(where, name)
                if where in self._lib:
                    if name not in self._lib[where]:
                        continue
                    if self._lib_shared:
                        self._confirm_later(what)
                        continue
                with self._lock:
                    self._count(what)

    def _confirm_later(self, what):
        """One confirmation at a time per program (a flood of opens starts
        no flood of threads)."""
        with self._lock:
            if what in self._pending:
                return
            thread = threading.Thread(target=self._confirm, args=(what,), daemon=True)
            self._pending[what] = thread
        thread.start()

    def _confirm(self, what):
        """An open on the shared /usr/lib, counted once a process of this
        container runs that program."""
        end = time.monotonic() + CONFIRM_S
        name = os.path.basename(what)
        while time.monotonic() < end:
            if running_here(name):
                with self._lock:
                    self._pending.pop(what, None)
                    self._count(what)
                return
            time.sleep(0.005)
        with self._lock:
            self._pending.pop(what, None)
            if len(self._unconfirmed) < MAX_OPENS:
                self._unconfirmed.append(what)

    def _count(self, what):
        self._total += 1
        if len(self._opens) < MAX_OPENS:
            self._opens.append(what)
        if what in self._counts or len(self._counts) < MAX_PROGRAMS:
            self._counts[what] = self._counts.get(what, 0) + 1
        else:
            self._overflow = True

    def stop(self):
        """What was seen: {"opens": [the first ones, in order], "counts":
        {program: opens}, "total": n, "overflow": bool}, or {"error": why}
        when nothing could be watched."""
        if self.error:
            return {"error": self.error}
        os.write(self._wake_write, b"x")
        self._thread.join(1.0)
        # Starts seen just before: their confirmation is waited for.
        with self._lock:
            pending = list(self._pending.values())
        for thread in pending:
            thread.join(CONFIRM_S + 0.1)
        seen = {
            "opens": list(self._opens),
            "counts": dict(self._counts),
            "total": self._total,
            "overflow": self._overflow,
            "lib_shared": self._lib_shared,
            "lib_unconfirmed": list(self._unconfirmed),
        }
        for fd in (self._fd, self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
        return seen


class Unwatched:
    """No watch, and why (the host then has no evidence of this kind)."""

    def __init__(self, why):
        self.why = why

    def stop(self):
        return {"error": self.why}
