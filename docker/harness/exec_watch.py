"""Programs the candidate starts, seen from the supervisor's process.

The kernel reports every open of a file in a watched folder to an inotify
descriptor (an exec opens the program, a script's exec also opens its
interpreter). The supervisor watches the folders programs live in from its
own process: the candidate can neither see nor silence the watch. The
dynamic loader is not watched: on engines where the containers share a
volume holding /usr/lib (sandbox/lib_volume.rs), its inode is shared too,
and every container's starts would show in every watch.

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
        seen = {
            "opens": list(self._opens),
            "counts": dict(self._counts),
            "total": self._total,
            "overflow": self._overflow,
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
