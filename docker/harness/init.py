"""The container's first process: starts the supervisor, reaps orphans,
passes signals on, and ends with the supervisor's exit status.

Docker's own init (`docker-init`) would do the same, but every process,
the candidate's included, can read pid 1's command line, and it named the
judge's supervisor. This one reads as a desktop's init does
(`/sbin/init splash`, named `systemd`). It keeps no other state: the
supervisor does the work.
"""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Run with `python3 -I`, which leaves the script's folder off sys.path.
sys.path.insert(0, HERE)

import proc_title  # noqa: E402

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def exit_code(status):
    """A shell's convention: the code, or 128 + the signal that ended it."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def main():
    proc_title.set_name("systemd")
    proc_title.set_command_line(["/sbin/init", "splash"])
    supervisor = os.fork()
    if supervisor == 0:
        for number in PASSED_ON:
            signal.signal(number, signal.SIG_DFL)
        os.execv(sys.executable, [sys.executable, "-I", os.path.join(HERE, "supervisor.py")])
    for number in PASSED_ON:
        signal.signal(number, lambda received, _frame: os.kill(supervisor, received))
    # Every orphan of the container comes here once its parent is gone
    # (the candidate's double-forked children among them): reaped at once,
    # so none of them holds a slot of the container's process limit.
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == supervisor:
            return exit_code(status)


if __name__ == "__main__":
    sys.exit(main())
