"""Time a busy machine took from the run: how long tasks waited for a CPU.

An answer is judged on its own behaviour, not on how loaded the machine
was: when other verifications (or a model server) keep the cores busy, a
benign app's replies come late, and a fixed wall clock would call it a
hang. The deadlines of the supervisor and the harness therefore move on by
the time the machine spent starved of CPU while they waited, at most by a
cap (the task's wall clock again), so that no answer runs unbounded.

The measure is the kernel's pressure stall information: the `some` total
of /proc/pressure/cpu, microseconds during which at least one runnable task
waited for a CPU. It is the whole machine's (not namespaced), which is what
is wanted: the load comes from outside the sandbox. Where the kernel has no
PSI, this process's own run-queue wait (/proc/self/schedstat) stands in.
An answer can lengthen its own allowance only by keeping the machine busy,
and only up to the cap: it can delay its verdict, never change it.
"""


PRESSURE = "/proc/pressure/cpu"
SCHEDSTAT = "/proc/self/schedstat"


def _psi_stalled():
    """Seconds of CPU pressure since boot, or None without PSI."""
    try:
        with open(PRESSURE) as f:
            for line in f:
                if line.startswith("some "):
                    for field in line.split():
                        if field.startswith("total="):
                            return int(field[6:]) / 1e6
    except (OSError, ValueError):
        pass
    return None


def _run_queue_wait():
    """Seconds this process's main thread waited runnable, or 0."""
    try:
        with open(SCHEDSTAT) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class Allowance:
    """The stall seen since it was made, capped: what a deadline may move by."""

    def __init__(self, cap_seconds):
        self.cap = max(0.0, float(cap_seconds))
        self.source = "psi" if _psi_stalled() is not None else "schedstat"
        self._start = self._read()
        # What a deadline that passed was moved on by (set by its waiter).
        self.applied = 0.0

    def _read(self):
        if self.source == "psi":
            stalled = _psi_stalled()
            return stalled if stalled is not None else 0.0
        return _run_queue_wait()

    def granted(self):
        """Seconds of stall since the start, at most the cap."""
        return min(self.cap, max(0.0, self._read() - self._start))

    def deadline(self, base):
        """`base` (a clock reading) moved on by the stall granted so far."""
        return base + self.granted()
