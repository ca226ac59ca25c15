"""What `ps` and /proc say a process is: its name and command line.

The candidate can read its own command line and its parent's
(/proc/self/cmdline, /proc/<ppid>/cmdline and comm); a desktop shows
`python3 app.py` started by a shell, not the judge's scripts. The kernel
reads a command line from the process's argv strings, which Python keeps
no use for once started, so each process writes over its own, through
/proc/self/mem (ctypes would be one more module in the app's process)."""


def set_command_line(args):
    """Makes /proc/self/cmdline read `args`. What does not fit is refused
    (False); the room left over reads as NULs."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # arg_start and arg_end, fields 48 and 49 of proc(5); this list
        # starts at field 3.
        start, end = int(fields[45]), int(fields[46])
        wanted = b"".join(arg.encode("utf-8", "surrogateescape") + b"\0" for arg in args)
        if not start or end <= start or len(wanted) > end - start:
            return False
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(wanted + b"\0" * (end - start - len(wanted)))
        return True
    except (OSError, ValueError, IndexError):  # a tell left open, never a failure
        return False


def set_name(name):
    """The process's name in /proc/self/comm (15 bytes at most)."""
    try:
        with open("/proc/self/comm", "wb", buffering=0) as comm:
            comm.write(name.encode()[:15])
        return True
    except OSError:
        return False
