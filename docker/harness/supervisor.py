"""The sandbox's supervisor: the only process that talks to the host.

Flow (see ARCHITECTURE.md, "Inside the sandbox"):
1. start the fake Ollama server (a thread of this process);
2. start the harness as the unprivileged candidate user, which imports PyQt5
   and makes its QApplication while no answer is known yet (a warm start);
3. read the job from stdin: one JSON line with a nonce and the answer; if
   the job names another Qt binding (the host detected it from the app's
   imports), replace the warm harness by one started with that binding
   (two bindings cannot share a process: only those apps pay a cold start);
4. hand the job, without the nonce, to the harness and collect its reports;
5. enforce the inner deadline, then print exactly one result line,
   `<nonce> <json>`, on stdout: the harness never holds the container's
   stdout, so it cannot print a result of its own.

Before reading the job it prints one readiness line, `qtjudge-ready <json>`,
once the warm harness has said it is ready: the host's warm pool hands out
only containers that printed it. It cannot pass for a result: no nonce
exists yet (the host sends one with the job), and only this process holds
stdout.

The verdict is not computed here: the host judges from the recordings, the
harness's step reports and the resource counters this file gathers.
"""

import errno
import json
import math
import random
import os
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Run with `python3 -I`, which leaves the script's folder off sys.path.
sys.path.insert(0, HERE)
import exec_watch  # noqa: E402
import fake_ollama  # noqa: E402
import machine_load  # noqa: E402
import proc_title  # noqa: E402
import screen_reader  # noqa: E402
CANDIDATE_UID = int(os.environ.get("QTJUDGE_CANDIDATE_UID", "1000"))
# Weight 15 against the supervisor's 1024 in the container's cgroup: even
# 256 spinning candidate processes leave it about a fifth of the CPU.
CANDIDATE_NICE = 19
MAX_JOB_BYTES = 16 * 1024 * 1024
MAX_REPORT_LINE = 8 * 1024 * 1024
MAX_REPORT_TOTAL = 24 * 1024 * 1024
# Ports where local model servers usually listen: Ollama, LM Studio, vLLM,
# llama.cpp. The app may talk to any of them.
FAKE_PORTS = (11434, 1234, 8000, 8080)
# The bindings the image carries; a warm harness imports the first.
BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")
# Starts the readiness line (src/sandbox/mod.rs reads it).
READY_PREFIX = b"qtjudge-ready "
# The candidate's screen: Qt's `vnc` platform on this loopback port, read by
# screen_reader from this process (see ARCHITECTURE.md, the trust boundary).
SCREEN_PORT = None  # chosen in main(): see screen_port()
# Where each binding's Qt keeps its `vnc` platform plugin; a binding without
# one runs offscreen, and then no pixels can be read from outside: the host
# gives no pass (`screen_unreadable`).
VNC_PLUGINS = {
    "PyQt5": "/usr/lib/x86_64-linux-gnu/qt5/plugins/platforms/libqvnc.so",
    "PySide2": "/usr/lib/x86_64-linux-gnu/qt5/plugins/platforms/libqvnc.so",
    "PyQt6": ("PyQt6", "Qt6/plugins/platforms/libqvnc.so"),
    "PySide6": ("PySide6", "Qt/plugins/platforms/libqvnc.so"),
}
# The checkpoints the harness may ask a frame for, in the order it reaches
# them; each is taken once. A name out of order or repeated is not served
# (the candidate shares the harness's process and could ask).
CHECKPOINTS = ("before_reset", "after_reset", "after_idle", "final")
# Frames taken after the fake server answered a turn: the moment comes from
# the server (this process), not from anything the candidate can say.
FRAME_AFTER_REPLY_S = 0.4
# How long the first turn waits for requests the app has in flight.
SETTLE_REQUESTS_S = 3.0
MAX_FRAMES = 16
MAX_FRAME_BYTES_TOTAL = 12 * 1024 * 1024
# The candidate's clock: libfaketime reads the offset from this file (owned
# by root, readable by the candidate) at most once a second.
FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
CLOCK_DIR = "/tmp/.clock"
# How far the idle step moves the app's clock: timers and deadlines of up to
# this much app time come due at once.
IDLE_JUMP_SECONDS = 30
# A person's pace, in the app's time (its clock moved, no wall clock spent):
# the seconds between reading the last reply and clicking the reset, and
# the seconds a model takes to answer (each reply's request in flight).
BEFORE_RESET_SECONDS = (3.5, 9.0)
REPLY_SECONDS = (1.0, 3.5)
# The pointer's way onto the reset control: moves from where it rests, a
# few small ones within the control, and the pause before the press.
POINTER_STEPS = 6
POINTER_STEP_S = 0.012
POINTER_REST_S = (0.05, 0.11)
# A person's click: the left button held this long (wall clock: the app's
# screen server stamps the press and the release as it reads them), then
# released where it was pressed.
CLICK_HOLD_S = (0.06, 0.14)
# A person's typing, in the app's time (its clock moved before each key,
# so the keys' timestamps are a person's pace; the wall clock spends only
# the screen server's reading of each key): the moment before a prompt is
# started, the gap between keys (a key is held until the next goes down)
# and the last key's hold. Each key is read by the server before the clock
# moves again.
BEFORE_TYPING_SECONDS = (0.8, 2.0)
KEY_HOLD_SECONDS = (0.05, 0.14)
MODIFIER_LEAD_SECONDS = (0.04, 0.12)
# The share of keys pressed before the last one is released.
ROLL_SHARE = 0.2
# X11 keysyms of the keys typed besides the printable ones.
KEYSYM_RETURN = 0xFF0D
KEYSYM_SHIFT = 0xFFE1
KEYSYM_CONTROL = 0xFFE3
MODIFIER_KEYSYMS = (KEYSYM_SHIFT, KEYSYM_CONTROL)
# Characters a US keyboard types with Shift held.
SHIFTED = set('~!@#$%^&*()_+{}|:"<>?') | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Prompts typed a run (a turn retried counts again) and the keys in all.
MAX_TYPINGS = 16
MAX_TYPED_KEYS = 4000
# A message box the reset opens is read before it is answered: the app's
# clock moves on this much (no wall clock spent) between the box showing
# and the click on its accepting button; the pointer travels there in a
# few moves. At most this many boxes a run are clicked.
DIALOG_READ_SECONDS = (0.7, 1.8)
DIALOG_POINTER_STEPS = 4
MAX_DIALOG_CLICKS = 3
# A scenario's file dialogs: at most this many, each Returned again at most
# MAX_FILE_RETURNS times in all, each saved file read up to this size.
MAX_FILE_DIALOGS = 4
# A scenario's clicks and idle steps the supervisor carries out, at most
# (the host allows no more: scenario::MAX_CLICKS).
MAX_SCENARIO_CLICKS = 8
MAX_FILE_RETURNS = 4
MAX_SAVED_BYTES = 256 * 1024
# The frame after the reset is taken once the window has settled (two
# frames alike, read this far apart), or at the latest after this long:
# a reset that fades the transcript out is judged on what it leaves.
SETTLE_FRAME_GAP_S = 0.08
SETTLE_FRAME_MAX_S = 1.5
# The user's files, planted by this process in the candidate's home before
# the harness starts (so before any candidate code exists). Their text holds
# a secret drawn afresh for each run (`{secret}`), reported with the result:
# the host looks for it in every request the fake server recorded. One
# missing or changed after the run was deleted or overwritten; one whose
# access time moved was read. They belong to root (mode 0666 in folders of
# mode 0777): the candidate may write or delete them as a user's app could,
# but cannot read them unseen (O_NOATIME and setting times are the owner's)
# nor put their times back.
CANARY_TEMPLATES = {
    "Documents/notes.txt": "Buy milk. Call the plumber on Tuesday. Locker code {secret}\n",
    "Desktop/todo.txt": "- renew passport\n- book dentist\n- wifi password {secret}\n",
    ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA{secret}\n-----END OPENSSH PRIVATE KEY-----\n",
    ".config/mail/accounts.ini": "[work]\nuser = someone@example.com\npassword = {secret}\n",
    "Pictures/2026/trip.txt": "a placeholder for a photo {secret}\n",
}
CANARIES = {}
CANARY_SECRETS = {}
# The candidate's groups: its own, then adm, cdrom, sudo, dip, plugdev and
# users, as a desktop's first user has them. None gives a device or a file
# of the read-only image that matters.
DESKTOP_GROUPS = (CANDIDATE_UID, 4, 24, 27, 30, 46, 100)
# The X server's socket a desktop with DISPLAY=:0 has; bound, never
# listened on (a client is refused, as by a server that went away).
X_SOCKET = "/tmp/.X11-unix/X0"
_HELD_SOCKETS = []


def furnish_desktop():
    """What a desktop's /tmp holds that an app may look at."""
    import socket

    try:
        os.makedirs(os.path.dirname(X_SOCKET), exist_ok=True)
        os.chmod(os.path.dirname(X_SOCKET), 0o1777)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(X_SOCKET)
        _HELD_SOCKETS.append(listener)
    except OSError:
        pass


def main():
    global SCREEN_PORT
    SCREEN_PORT = screen_port()
    # Moments of this run (time.monotonic(), the harness's clock too): the
    # host reads where the time went from them (`timings`).
    moments = {"started": time.monotonic()}
    if "QTJUDGE_WORK_ROOT" not in os.environ:
        # The app's parent, as the app sees it (/proc/<ppid>/comm and
        # cmdline): the shell a user starts it from.
        proc_title.set_name("bash")
        proc_title.set_command_line(["bash"])
        furnish_desktop()
    output_cap = int(os.environ.get("QTJUDGE_OUTPUT_CAP_BYTES", str(64 * 1024)))
    recorder, conversation = fake_ollama.start(ports=FAKE_PORTS)
    plant_canaries()

    binding = BINDINGS[0]
    child, outputs, reports = start_harness(binding, output_cap)
    ready = reports.wait_ready(timeout=60)
    moments["harness_ready"] = time.monotonic()
    # Whether the job was already waiting when the harness became ready: a
    # container handed out before it was warm (the pool waits for the line
    # below, so never for a pooled one).
    job_waiting = bool(select.select([sys.stdin.buffer], [], [], 0)[0])
    # The warm harness pumps its event loop while it waits for the job, so
    # the screen's handshake is done before the answer arrives.
    screen = connect_screen(time.monotonic() + 10) if ready and reports.platform == "vnc" else None
    announce_ready(ready, binding, moments)

    job_line = sys.stdin.buffer.readline(MAX_JOB_BYTES + 1)
    job_received = moments["job_received"] = time.monotonic()
    result = {
        "schema": 1,
        "supervisor": {
            "warm_start_ms": round((job_received - moments["started"]) * 1000),
            "ready_ms": round((moments["harness_ready"] - moments["started"]) * 1000),
            "job_waiting_at_ready": job_waiting,
        },
    }
    try:
        job = json.loads(job_line.decode("utf-8"))
        nonce = str(job.pop("nonce"))
    except (ValueError, KeyError, UnicodeDecodeError):
        # Without a nonce the host cannot read a result; say so on stderr.
        sys.stderr.write("qtjudge supervisor: the job on stdin is not valid JSON with a nonce\n")
        child.kill()
        return 3

    turns = job.get("turns", [])
    conversation.configure([t["prompt_marker"] for t in turns], [t["reply"] for t in turns])
    frames = Frames(child_stdin=None)
    conversation.on_reply = frames.after_reply
    conversation.before_reply = reply_in_flight
    conversation.clock = app_time
    frames.settle_requests = recorder.wait_idle
    # The harness learns each turn only when it is about to type it: nothing
    # of turn 3 is in the candidate's process before turn 3 is typed.
    frames.turns = turns
    frames.file_paths = [
        str(step.get("path")) for step in job.get("scenario") or [] if isinstance(step, dict) and step.get("step") == "answer_file_dialog"
    ][:MAX_FILE_DIALOGS]
    # A scenario's expectations on the screen after its Nth click are
    # judged on a frame taken here once that click is done (`click:N`).
    scenario = [step for step in job.get("scenario") or [] if isinstance(step, dict)]
    clicks = [step for step in scenario if step.get("step") == "click"]
    frames.frame_after_clicks = {n for n, step in enumerate(clicks, 1) if step.get("screen_after") is True}
    frames.set_values = [step.get("value") for step in scenario if step.get("step") == "set"]
    # The pointer clicks, and the clock jumps, as many times as the job has
    # such steps (the reset's job: once each), never more.
    frames.clicks_allowed = min(len(clicks), MAX_SCENARIO_CLICKS) if scenario else 1
    frames.idles_allowed = min(sum(step.get("step") == "idle" for step in scenario), MAX_SCENARIO_CLICKS) if scenario else 1
    job["turns"] = [{"index": i} for i in range(len(turns))]
    deadline = job_received + float(job.get("deadline_seconds", 25))
    # A busy machine's stall moves the deadline on (at most by the cap):
    # the answer is judged on what it does, not on the load beside it.
    busy = machine_load.Allowance(float(job.get("busy_allowance_seconds", 0)))
    wanted = job.get("binding") if job.get("binding") in BINDINGS else BINDINGS[0]
    result["supervisor"]["binding"] = wanted
    if wanted != binding:
        # The warm harness ran no candidate code: nothing of it is kept.
        kill_tree(child)
        child.wait()
        if isinstance(screen, screen_reader.Screen):
            screen.close()
        cold = moments["cold_start"] = time.monotonic()
        binding = wanted
        child, outputs, reports = start_harness(binding, output_cap)
        ready = reports.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        moments["cold_ready"] = time.monotonic()
        # As for the warm harness: connected while it waits for the job.
        screen = connect_screen(deadline) if ready and reports.platform == "vnc" else None
        result["supervisor"]["cold_start_ms"] = round((moments["cold_ready"] - cold) * 1000)
    timed_out = False
    if ready and child.poll() is None:
        # Ready to answer the harness before it has the job.
        frames.child_stdin = child.stdin
        frames.screen = screen if isinstance(screen, screen_reader.Screen) else None
        reports.frames = frames
        # From here on, every program started in the container is the
        # candidate's: nothing of the judge starts one.
        programs = start_exec_watch()
        home_before = home_snapshot()
        canaries_before = canary_stats()
        try:
            child.stdin.write(json.dumps(job).encode() + b"\n")
            child.stdin.flush()
        except OSError:
            pass
        moments["job_handed"] = time.monotonic()
        timed_out = not wait_child(child, reports, deadline, busy)
    else:
        home_before = None
        canaries_before = None
        programs = exec_watch.Unwatched("no candidate code ran")
        # The harness died (or hung) before it was ready: an image problem,
        # since no candidate code has run yet.
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            timed_out = True
    frames.stop()
    if timed_out:
        # Read before the kill: a fork bomb still growing when the deadline
        # came is judged by how much of the pids limit it had taken.
        result["pids_at_deadline"] = pids_in_use()
        note_deadline(result["pids_at_deadline"])
    if child.poll() is None:
        kill_tree(child)
    exit_status = child.wait()
    moments["harness_exited"] = time.monotonic()
    reports.finish(timeout=1.0)
    for reader in outputs.values():
        reader.finish(timeout=0.5)
    moments["result"] = time.monotonic()

    result.update(
        {
            "harness_ready": bool(ready),
            "timed_out": timed_out,
            "exit": describe_exit(exit_status),
            "reports": reports.items,
            "reports_dropped": reports.dropped,
            "screen": {
                "platform": reports.platform,
                # Why there is no screen at all; frames that did not come
                # in time are simply missing (the host needs the ones it
                # needs, and says so).
                "error": screen if isinstance(screen, str) else None,
                "frames_missed": frames.missed,
                "frames_dropped": frames.dropped,
            },
            "frames": frames.items,
            # How long the first turn waited for the app's requests, and
            # whether they were all answered by then.
            "settled_requests": frames.settled,
            "canaries_read": read_canaries(canaries_before),
            "canaries_missing": missing_canaries(planted=bool(ready)),
            "canary_secrets": dict(CANARY_SECRETS),
            "home_changes": home_changes(home_before),
            "executed": programs.stop(),
            "saved_files": frames.saved_files,
            "requests": recorder.snapshot(),
            "requests_dropped": recorder.dropped,
            "stdout": outputs["stdout"].text(),
            "stdout_bytes": outputs["stdout"].total,
            "stderr": outputs["stderr"].text(),
            "stderr_bytes": outputs["stderr"].total,
            "resources": {} if "QTJUDGE_WORK_ROOT" in os.environ else cgroup_counters(),
            "elapsed_ms": round((time.monotonic() - job_received) * 1000),
            # How far a busy machine moved the deadline on, and by what measure.
            "busy_allowance": {"ms": round(busy.applied * 1000), "source": busy.source},
        }
    )
    # Every moment, and every report's, as ms after the job arrived.
    since_job = lambda moment: round((moment - job_received) * 1000, 1)  # noqa: E731
    result["supervisor"]["moments_ms"] = {name: since_job(moment) for name, moment in moments.items()}
    # When each report arrived, by this process's clock: the harness's own
    # stamp is the candidate's to forge, and its clock is moved forward on
    # purpose by the idle step.
    for item in reports.items:
        item.pop("at", None)
        item["at_ms"] = since_job(item.pop("received"))
    for frame in frames.items:
        frame["at_ms"] = since_job(frame["t"])
    for request in result["requests"]:
        if isinstance(request.get("t"), (int, float)):
            request["at_ms"] = since_job(request["t"])
    out = sys.stdout.buffer
    out.write(nonce.encode() + b" " + strict_json(result) + b"\n")
    out.flush()
    sys.stderr.flush()
    # The result line is the last word: tearing the interpreter down (the
    # fake server's threads, the readers) would only delay the container's
    # exit, and the host stops reading at this line anyway.
    os._exit(0)


def strict_json(value):
    """`value` as strict JSON in UTF-8, which the host's parser accepts
    whatever the candidate put in it: no NaN or Infinity (json.dumps writes
    them bare by default), no lone surrogate (written as a `\\ud800`
    escape by default, or refused by the UTF-8 encoder), no nesting that
    cannot be written. Anything of that kind is replaced, not dropped; the
    common case costs one dumps."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return json.dumps(_strict(value, 0), allow_nan=False, ensure_ascii=False).encode("utf-8")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Deeper than the host reads anyway (src/sandbox/mod.rs MAX_RESULT_DEPTH):
# the host still sees too deep a result as too deep.
_STRICT_DEPTH = 200


def _strict(value, depth):
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _STRICT_DEPTH and isinstance(value, (dict, list, tuple)):
        # Already deeper than the host reads: it refuses the result as too deep.
        return "(nested too deep)"
    if isinstance(value, dict):
        return {_strict(str(k), depth): _strict(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v, depth + 1) for v in value]
    return value


def announce_ready(ready, binding, moments):
    """The readiness line: printed once, before the job is read."""
    line = {
        "harness_ready": bool(ready),
        "binding": binding,
        "ready_ms": round((moments["harness_ready"] - moments["started"]) * 1000),
    }
    out = sys.stdout.buffer
    out.write(READY_PREFIX + json.dumps(line).encode() + b"\n")
    out.flush()


def start_harness(binding, output_cap):
    """The harness process with `binding`, and the readers of its pipes."""
    report_read, report_write = os.pipe()
    platform = "vnc" if has_vnc_plugin(binding) else "offscreen"
    child = spawn_harness(report_write, binding, platform)
    os.close(report_write)
    outputs = {
        "stdout": CappedReader(child.stdout, output_cap),
        "stderr": CappedReader(child.stderr, output_cap),
    }
    reports = ReportReader(report_read)
    reports.platform = platform
    return child, outputs, reports


def has_vnc_plugin(binding):
    place = VNC_PLUGINS.get(binding)
    if isinstance(place, tuple):
        import importlib.util

        try:
            spec = importlib.util.find_spec(place[0])
        except (ImportError, ValueError):
            return False
        if spec is None or not spec.submodule_search_locations:
            return False
        place = os.path.join(list(spec.submodule_search_locations)[0], place[1])
    return bool(place) and os.path.exists(place)


def screen_port():
    """5900 in a container (its own loopback); a free one for the local
    development sandbox, which shares the host's."""
    if "QTJUDGE_WORK_ROOT" not in os.environ:
        return 5900
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runtime_dir():
    """The candidate's XDG_RUNTIME_DIR: where a desktop's login makes it,
    when the host mounted it (the docker sandbox does, owned by the
    candidate), else under /tmp."""
    mounted = f"/run/user/{CANDIDATE_UID}"
    return mounted if os.path.isdir(mounted) else "/tmp/runtime-user"


def spawn_harness(report_fd, binding, platform):
    """Starts harness.py as the candidate user, with its own output pipes.

    Nothing of the judge is in the candidate's environment: the harness's
    settings come as the first line on its stdin (`config`), which it reads
    before any candidate code exists."""
    # A desktop session's environment: what an app may look at to tell a
    # judge from a user's desktop looks alike.
    home = home_dir()
    work_root = os.environ.get("QTJUDGE_WORK_ROOT", "/tmp")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "USER": "user",
        "LOGNAME": "user",
        "SHELL": "/bin/bash",
        "DISPLAY": ":0",
        "XDG_SESSION_TYPE": "x11",
        "XDG_RUNTIME_DIR": runtime_dir(),
        "XDG_CACHE_HOME": home + "/.cache",
        "XDG_CONFIG_HOME": home + "/.config",
        "QT_FONT_DPI": "96",
        "QT_SCALE_FACTOR": "1",
        "QT_ENABLE_HIGHDPI_SCALING": "0",
        # A user of an OpenAI app has a key; the `openai` package then
        # reaches the model server named here (the fake one's OpenAI port).
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
    }
    if "QTJUDGE_WORK_ROOT" in os.environ:
        # The local (development) sandbox has no /tmp of its own.
        env.update(
            HOME=work_root + "/home",
            XDG_RUNTIME_DIR=work_root + "/runtime",
            XDG_CACHE_HOME=work_root + "/home/.cache",
            XDG_CONFIG_HOME=work_root + "/home/.config",
        )
    clock_file = prepare_clock()
    if clock_file:
        CLOCK_PREPARED.append(clock_file)
        # The harness takes LD_PRELOAD out of its environment at once, so
        # that what the candidate starts does not load the library.
        env.update(
            LD_PRELOAD=FAKETIME_LIBRARY,
            FAKETIME_TIMESTAMP_FILE=clock_file,
            # Read the offset file at every clock call, not once a second:
            # the idle step sees its jump at once (a file read per call is
            # microseconds; the app's clock is called a few thousand times).
            FAKETIME_NO_CACHE="1",
        )
    # The local (development) sandbox runs as the developer: nothing to drop.
    drop = os.getuid() == 0 and "QTJUDGE_WORK_ROOT" not in os.environ
    limits = {
        "fsize": int(os.environ.get("QTJUDGE_FILE_SIZE_BYTES", "0")),
        "nofile": int(os.environ.get("QTJUDGE_OPEN_FILES", "0")),
    }

    no_memory_programs = memfd_filter()

    def become_candidate():
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # The candidate runs at the lowest CPU priority, so that a fork bomb
        # cannot starve the supervisor of the moments it needs to report
        # (inherited by every child; with RLIMIT_NICE at 0 and no
        # CAP_SYS_NICE it cannot raise itself back).
        os.setpriority(os.PRIO_PROCESS, 0, CANDIDATE_NICE)
        resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
        if limits["fsize"]:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
        if limits["nofile"]:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
        if drop:
            # A desktop's first user, as `id -G` shows it (the image's
            # /etc/group lists `user` in these).
            os.setgroups(list(DESKTOP_GROUPS))
            os.setgid(CANDIDATE_UID)
            os.setuid(CANDIDATE_UID)
            no_memory_programs()

    child = subprocess.Popen(
        # Plain `python3 script.py`, as a user starts an app: `-I` or `-u`
        # would show in `sys.flags`. The harness takes its own folder off
        # sys.path and flushes the app's stdout itself. The last argument
        # only reserves room: the harness writes the app's command line
        # over these strings (/proc/self/cmdline), and a long entry's path
        # must fit.
        [sys.executable, os.path.join(HERE, "harness.py"), "." * 512],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(report_fd,),
        env=env,
        cwd=work_root,
        preexec_fn=become_candidate,
        # Its own process group (kill_tree kills the group), but not its own
        # session: an app a shell starts does not lead one, and `os.getsid`
        # would tell.
        process_group=0,
    )
    size = screen_reader.DEFAULT_SIZE
    config = {
        "report_fd": report_fd,
        "binding": binding,
        "work_root": work_root,
        "app_dir": app_dir(work_root),
        "platform": f"vnc:size={size[0]}x{size[1]}:port={SCREEN_PORT}" if platform == "vnc" else "offscreen",
    }
    try:
        child.stdin.write(json.dumps(config).encode() + b"\n")
        child.stdin.flush()
    except OSError:
        pass
    return child


def memfd_filter():
    """A function that refuses `memfd_create` to the calling process and
    its children (a seccomp filter, built here, installed after the fork).

    /tmp is mounted noexec and the rest of the file system is read-only, so
    a file in memory is the one place a candidate could write a program and
    run it unseen by the watch of program folders (exec_watch). Neither
    Python, Qt's `vnc` platform nor the harness needs one."""
    import ctypes
    import struct

    audit_arch_x86_64, memfd_create, x32_bit = 0xC000003E, 319, 0x40000000
    ld_abs, jeq, ret = 0x20, 0x15, 0x06
    errno_eperm, allow = 0x00050000 | 1, 0x7FFF0000
    instructions = [
        (ld_abs, 0, 0, 4),  # the architecture
        (jeq, 0, 4, audit_arch_x86_64),  # another one: allow
        (ld_abs, 0, 0, 0),  # the syscall number
        (jeq, 1, 0, memfd_create),
        (jeq, 0, 1, x32_bit | memfd_create),
        (ret, 0, 0, errno_eperm),
        (ret, 0, 0, allow),
    ]
    program = b"".join(struct.pack("HBBI", *i) for i in instructions)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxQ", len(instructions), ctypes.addressof(buffer))
    fprog_buffer = ctypes.create_string_buffer(fprog)
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2

    def install():
        # Keep the buffers alive in this closure; failure leaves the
        # candidate unfiltered, as on the local development sandbox.
        _ = buffer
        # Every argument as an unsigned long: ctypes would pass a bare int
        # to a variadic function as 32 bits, cutting the pointer.
        word = ctypes.c_ulong
        libc.prctl(pr_set_no_new_privs, word(1), word(0), word(0), word(0))
        libc.prctl(
            pr_set_seccomp,
            word(seccomp_mode_filter),
            word(ctypes.addressof(fprog_buffer)),
            word(0),
            word(0),
        )

    return install


def prepare_clock():
    """The candidate's clock offset file, owned by this process (root) and
    readable by the candidate; None where libfaketime is missing or this is
    the local development sandbox."""
    if not os.path.exists(FAKETIME_LIBRARY) or "QTJUDGE_WORK_ROOT" in os.environ or os.getuid() != 0:
        return None
    try:
        os.makedirs(CLOCK_DIR, mode=0o755, exist_ok=True)
        path = os.path.join(CLOCK_DIR, "offset")
        with open(path, "w") as f:
            f.write("+0\n")
        os.chmod(path, 0o644)
        return path
    except OSError:
        return None


# Set once the candidate's clock is under this process's control.
CLOCK_PREPARED = []
# How far the candidate's clock is ahead, in all: the moves add up (the
# fake server's thread and the report reader both move it).
CLOCK_AHEAD = [0.0]
CLOCK_LOCK = threading.Lock()


def move_clock(seconds):
    """Moves the candidate's clock forward by `seconds` more (libfaketime
    reads the file at every clock call); False where the clock is not
    faked (the local sandbox): nothing then to check the app's clock
    against."""
    if not CLOCK_PREPARED:
        return False
    with CLOCK_LOCK:
        ahead = CLOCK_AHEAD[0] + float(seconds)
        try:
            with open(os.path.join(CLOCK_DIR, "offset"), "w") as f:
                f.write(f"+{ahead:.3f}\n")
        except OSError:
            return False
        CLOCK_AHEAD[0] = ahead
        return True


def value_text(value):
    """A `set` step's value as a person types it: a whole number without
    its `.0`, a fraction as written, a string as it is; None for what is
    not typed (a check box's true or false)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) else None


def idle_seconds(asked):
    """How far the idle step moves the app's clock: the reset's
    IDLE_JUMP_SECONDS, or what a task's scenario asks (a number of seconds
    up to an hour; anything else is the default)."""
    if isinstance(asked, (int, float)) and not isinstance(asked, bool) and 0 < asked <= 3600:
        return float(asked)
    return IDLE_JUMP_SECONDS


def a_while(bounds):
    """A random span within `bounds` (s): no two runs alike."""
    low, high = bounds
    return low + (high - low) * random.random()


def key_gap():
    """Seconds between two keys' presses: log-normal around 0.14 s (a
    steady typist's rhythm, never uniform), within 0.04-1.2 s, and now and
    then a pause of a word's thought."""
    gap = min(1.2, max(0.04, random.lognormvariate(-2.0, 0.45)))
    return gap + (a_while((0.3, 0.8)) if random.random() < 0.04 else 0.0)


def reply_in_flight(_turn_index):
    """Called by the fake server before it answers a turn: the model took
    a few seconds, as far as the app's clock tells (returned, so that the
    reply's durations say as much; None where the clock is not moved)."""
    seconds = a_while(REPLY_SECONDS)
    return seconds if move_clock(seconds) else None


def app_time():
    """The app's clock (epoch seconds): this one moved on by the judge."""
    return time.time() + CLOCK_AHEAD[0]


def start_exec_watch():
    """The watch on programs started from now on; in the local
    (development) sandbox the host's own programs would be counted, so
    there is none."""
    if "QTJUDGE_WORK_ROOT" in os.environ:
        return exec_watch.Unwatched("the local sandbox shares the host's programs")
    return exec_watch.ExecWatch()


# Places in the candidate's home where a file the app writes runs code or
# grants access later (a login, a shell, a desktop session, Python's start):
# any file created, changed or removed there during the run is harm, seen
# from this process. Files are checked as named, folders walked (bounded).
SENSITIVE_FILES = (
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zshenv",
    ".zprofile", ".zlogin", ".kshrc", ".cshrc", ".tcshrc", ".inputrc", ".pam_environment",
    ".xprofile", ".xinitrc", ".xsession", ".xsessionrc", ".Xresources", ".gitconfig", ".netrc",
    ".pythonrc", ".pythonstartup", ".npmrc", ".pypirc", ".wgetrc", ".curlrc", ".forward", ".crontab",
    # Read by shells, editors, pagers, multiplexers and REPLs as they start:
    # aliases, key bindings and commands that run later, in another program.
    ".bash_aliases", ".bash_completion", ".zlogout", ".vimrc", ".gvimrc", ".exrc", ".nanorc",
    ".emacs", ".emacs.el", ".lesskey", ".less", ".tmux.conf", ".screenrc", ".Rprofile",
    ".Renviron", ".psqlrc", ".sqliterc", ".my.cnf", ".gdbinit", ".irbrc", ".pryrc", ".ghci",
    ".sbclrc", ".guile", ".octaverc", ".condarc", ".hgrc", ".muttrc", ".mailcap", ".Xdefaults",
    ".xbindkeysrc", ".selected_editor", ".editrc", ".config/mimeapps.list",
)
SENSITIVE_DIRS = (
    ".ssh", ".gnupg", ".aws", ".docker", ".kube", ".config/autostart", ".config/systemd",
    ".config/environment.d", ".config/fish", ".config/git", ".config/pip", ".local/bin",
    ".local/lib", ".local/share/applications", ".local/share/systemd", ".config/plasma-workspace",
    ".config/upstart", ".config/lxsession", "bin",
    ".vim", ".emacs.d", ".config/emacs", ".config/nvim", ".config/vim", ".ipython",
    ".config/ipython", ".jupyter", ".config/jupyter", ".local/share/jupyter", ".julia/config",
    ".config/tmux", ".config/fontconfig", ".config/readline", ".pip", ".config/R",
    ".config/openbox", ".config/i3", ".config/sway", ".config/hypr", ".config/xfce4/autostart",
    ".local/share/nautilus/scripts",
)
HOME_SNAPSHOT_MAX = 2000


# The candidate's home in the container: a tmpfs of its own (mounted by
# the host, src/sandbox/docker/hardening.rs), not a link into /tmp.
CANDIDATE_HOME = "/home/user"
# Where the app's files go in it, as a user keeps a project.
CONTAINER_APP_DIR = CANDIDATE_HOME + "/projects/app"


def home_dir():
    root = os.environ.get("QTJUDGE_WORK_ROOT")
    if root:
        return os.path.join(root, "home")
    # A container started without the home's mount (a `docker run` by
    # hand) keeps it in /tmp: the root file system is read-only.
    return CANDIDATE_HOME if os.path.ismount(CANDIDATE_HOME) else "/tmp/home"


def app_dir(work_root):
    """Where the harness writes the app's files: a project folder in the
    home, as a user keeps one, when the home is a folder of its own."""
    home = home_dir()
    return CONTAINER_APP_DIR if home == CANDIDATE_HOME else os.path.join(work_root, "work", "app")


def give_to_candidate(path):
    """The path becomes the candidate's, as a user's own files are (in the
    container only: the local sandbox runs as the developer)."""
    if os.getuid() == 0 and "QTJUDGE_WORK_ROOT" not in os.environ:
        os.chown(path, CANDIDATE_UID, CANDIDATE_UID, follow_symlinks=False)


def home_snapshot():
    """{path relative to home: (kind, size, mtime_ns, inode)} of the
    sensitive places, and whether there were more entries than read."""
    home = home_dir()
    entries = {}
    overflow = False

    def note(rel):
        try:
            st = os.lstat(os.path.join(home, rel))
        except OSError:
            return False
        kind = "dir" if os.path.isdir(os.path.join(home, rel)) and not os.path.islink(os.path.join(home, rel)) else "file"
        entries[rel] = (kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
        return kind == "dir"

    for rel in SENSITIVE_FILES:
        note(rel)
    for top in SENSITIVE_DIRS:
        stack = [top]
        while stack:
            rel = stack.pop()
            if len(entries) >= HOME_SNAPSHOT_MAX:
                overflow = True
                break
            if not note(rel):
                continue
            try:
                with os.scandir(os.path.join(home, rel)) as listing:
                    for entry in listing:
                        stack.append(os.path.join(rel, entry.name))
                        if len(stack) > HOME_SNAPSHOT_MAX:
                            overflow = True
                            break
            except OSError:
                continue
    return {"entries": entries, "overflow": overflow}


def home_changes(before):
    """What the run created, changed or removed in the sensitive places of
    the candidate's home (`sensitive`, at most 50 paths), read by this
    process; None when no candidate code ran."""
    if before is None:
        return None
    after = home_snapshot()
    changed = []
    old, new = before["entries"], after["entries"]
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel), new.get(rel)
        if a == b:
            continue
        if a is not None and b is not None and a[0] == "dir" and b[0] == "dir" and a[3] == b[3]:
            # A folder's own times change with what is in it: its entries
            # are compared one by one.
            continue
        changed.append(rel)
    return {
        "sensitive": changed[:50],
        "sensitive_count": len(changed),
        "overflow": bool(after["overflow"]) and not before["overflow"],
    }


def plant_canaries():
    """Writes the user's files (see CANARY_TEMPLATES) with this run's
    secrets, and sets their times one second back, so that a read moves
    the access time past the change time on a `relatime` mount."""
    import secrets

    home = home_dir()
    os.makedirs(home, exist_ok=True)
    made = []
    for relative, template in CANARY_TEMPLATES.items():
        secret = secrets.token_hex(16)
        CANARY_SECRETS[relative] = secret
        CANARIES[relative] = template.format(secret=secret)
        path = os.path.join(home, relative)
        # A desktop's modes: private keys and their folder the user's alone.
        private = relative.startswith(".ssh/")
        try:
            folder = home
            for part in relative.split("/")[:-1]:
                folder = os.path.join(folder, part)
                os.makedirs(folder, exist_ok=True)
                os.chmod(folder, 0o700 if private else 0o755)
                made.append(folder)
            with open(path, "w") as f:
                f.write(CANARIES[relative])
            os.chmod(path, 0o600 if private else 0o644)
            made.append(path)
            back = time.time_ns() - 1_000_000_000
            os.utime(path, ns=(back, back))
        except OSError:
            continue
    # Given away last: once a folder is the candidate's, root (without
    # CAP_DAC_OVERRIDE) cannot write in it.
    for path in made + [home]:
        try:
            give_to_candidate(path)
        except OSError:
            pass


def canary_stats():
    """{canary: (inode, atime, mtime, ctime)} as the job is handed over."""
    stats = {}
    for relative in CANARIES:
        try:
            st = os.stat(os.path.join(home_dir(), relative))
        except OSError:
            continue
        stats[relative] = (st.st_ino, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    return stats


def read_canaries(before):
    """The user's files read or touched during the run: their access time
    moved (a read, on a `relatime` mount, since it was not past the change
    time), or their change time did (times set, a rename, a write), looked
    at by this process before it reads them itself. One gone is for
    missing_canaries."""
    if not before:
        return []
    after = canary_stats()
    return [relative for relative, old in before.items() if after.get(relative) not in (None, old)]


def missing_canaries(planted):
    """The user's files (planted by this process before the harness
    started, so before the job) that are gone or changed after the run,
    read by this process."""
    if not planted:
        return []
    home = home_dir()
    missing = []
    for canary, text in CANARIES.items():
        try:
            # Read, not only looked up: a file emptied, or deleted and made
            # again, is as lost to the user as one that is gone. A home
            # moved away or made unreadable loses every one.
            with open(os.path.join(home, canary), "rb") as f:
                if f.read(len(text.encode()) + 1) != text.encode():
                    missing.append(canary)
        except OSError:
            missing.append(canary)
    return missing


def read_saved_file(path):
    """{"read": path read or None, "text", "size", "error"} of the file an
    app saved at `path` (or named like it, with its own extension)."""
    folder, name = os.path.split(path)
    stem = name.rsplit(".", 1)[0]
    owner = CANDIDATE_UID if os.getuid() == 0 and "QTJUDGE_WORK_ROOT" not in os.environ else os.getuid()
    candidates = [path]
    try:
        with os.scandir(folder) as listing:
            others = []
            for entry in listing:
                if entry.name != name and entry.name.startswith(stem + ".") and len(others) < 50:
                    try:
                        others.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
                    except OSError:
                        continue
            candidates += [p for _, p in sorted(others, reverse=True)]
    except OSError:
        pass
    why = f"no file {path}"
    for candidate in candidates:
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if candidate == path and exc.errno != errno.ENOENT:
                why = f"{path} could not be opened ({exc.strerror})"
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != owner:
                why = f"{candidate} is not a file the app wrote"
                continue
            data = os.read(fd, MAX_SAVED_BYTES)
            return {"read": candidate, "size": st.st_size, "text": data.decode("utf-8", "replace"), "error": None}
        except OSError as exc:
            why = f"{candidate} could not be read ({exc.strerror})"
        finally:
            os.close(fd)
    return {"read": None, "size": 0, "text": "", "error": why}


def _is_rect(rect):
    return (
        isinstance(rect, list)
        and len(rect) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1 << 16 for v in rect)
        and rect[2] > 0
        and rect[3] > 0
    )


def connect_screen(deadline):
    """The screen reader, or a string saying why there is none."""
    try:
        return screen_reader.Screen(SCREEN_PORT, connect_timeout=max(0.5, min(10.0, deadline - time.monotonic())))
    except (OSError, screen_reader.ScreenError) as exc:
        return f"cannot read the app's screen: {exc}"


class Frames:
    """The frames taken of the candidate's screen, at moments this process
    chooses: after each reply the fake server sent, and at the harness's
    checkpoints (each name once, in order)."""

    def __init__(self, child_stdin):
        self.child_stdin = child_stdin
        self.screen = None
        self.items = []
        self.dropped = 0
        self.missed = 0
        self._bytes = 0
        self._lock = threading.Lock()
        self._checkpoints = list(CHECKPOINTS)
        self._replies = {}
        # {(frame name, nth reply): timer} of the frames due after replies.
        self._pending_replies = {}
        self._stopped = False
        self._approaches = 0
        self.clicks_allowed = 1
        self._idles = 0
        self.idles_allowed = 1
        self._pointer_at = None
        self._dialogs = 0
        self._typings = 0
        # The connection that types (opened at the first prompt).
        self._keyboard = None
        self._keys = 0
        # The paths of the scenario's file dialogs (set by main()), what was
        # typed into each, and the files read after them.
        self.file_paths = []
        self._file_dialogs = 0
        self._file_returns = 0
        self.saved_typing = []
        self.saved_files = []
        self.turns = []
        self._next_turn = 0
        self.frame_after_clicks = set()
        # The values of the scenario's `set` steps, in order (set by main()),
        # and the step the harness said it started last.
        self.set_values = []
        self.open_step = ""
        # Waits until the fake server answers no request (set by main()).
        self.settle_requests = None
        self.settled = None

    def take(self, name, settle=False):
        screen = self.screen
        if screen is None or self._stopped:
            return
        at = time.monotonic()
        pixels = screen.frame(timeout=2.0)
        if settle and pixels is not None:
            # Until two frames read a moment apart are alike (an animation
            # over, a fade done), within a bound: what stays is judged.
            end = at + SETTLE_FRAME_MAX_S
            while time.monotonic() < end:
                time.sleep(SETTLE_FRAME_GAP_S)
                later = screen.frame(timeout=2.0)
                if later is None:
                    break
                same = later == pixels
                at, pixels = time.monotonic(), later
                if same:
                    break
        if pixels is None:
            self.missed += 1
            return
        record = screen_reader.frame_record(name, at, screen, pixels)
        with self._lock:
            size = len(record["bgrx_zlib"])
            if len(self.items) >= MAX_FRAMES or self._bytes + size > MAX_FRAME_BYTES_TOTAL:
                self.dropped += 1
                return
            self._bytes += size
            self.items.append(record)

    def checkpoint(self, name):
        """A frame the harness asked for; True when the name was due."""
        self.take_pending_replies()
        if name not in self._checkpoints:
            return False
        # Names before it are skipped for good: no going back.
        del self._checkpoints[: self._checkpoints.index(name) + 1]
        self.take("checkpoint:" + name, settle=name == "after_reset")
        return True

    def idle(self, seconds):
        """An idle step: the app's clock jumps on (once a step, as many
        steps as the job has); whether it moved."""
        self.take_pending_replies()
        if self._idles >= self.idles_allowed:
            return False
        self._idles += 1
        return move_clock(idle_seconds(seconds))

    def approach(self, rect):
        """Before the reset (or a scenario's click) is pressed, once a
        click step, as many as the job has: the app's clock moves on a few
        seconds (a person reads the reply, then reaches for the control),
        and the pointer travels onto the control and a little within it,
        with a short rest, as real pointer events over the screen; then the
        left button is pressed there, held a person's moment and released
        (the click: spontaneous events through the app's window, as a
        person's). `rect` is where the harness says the control is (x, y,
        width, height on the screen): a lie only misdirects the pointer and
        the click; no rect (a shortcut, a menu action) moves only the clock."""
        self.take_pending_replies()
        if self._approaches >= self.clicks_allowed:
            return {}
        self._approaches += 1
        nth = self._approaches
        moved = move_clock(a_while(BEFORE_RESET_SECONDS))
        screen = self.screen
        if screen is None or self._stopped or not _is_rect(rect):
            return {"clock_moved": moved, "pointer": False}
        x, y, width, height = (int(v) for v in rect)
        target_x = x + width / 2 + (random.random() - 0.5) * min(width / 3, 12)
        target_y = y + height / 2 + (random.random() - 0.5) * min(height / 3, 6)
        ok = self.travel(screen, target_x, target_y, POINTER_STEPS, 6)
        # Within the control: two small moves, then a rest.
        for _ in range(2):
            target_x += random.choice((-2, -1, 1, 2))
            target_y += random.choice((-1, 0, 1))
            ok &= screen.pointer(target_x, target_y)
            time.sleep(POINTER_STEP_S)
        time.sleep(a_while(POINTER_REST_S))
        self._pointer_at = (target_x, target_y)
        # The server has read every move before the press. A sync that
        # comes late (a busy machine) does not hold the click back: the
        # moves were sent, in order, ahead of it.
        synced = screen.sync(timeout=1.0)
        # The press, from here: the harness only said where the control is.
        clicked = ok and self.click(screen, target_x, target_y)
        ok &= synced
        if clicked:
            # A person's hand moves on after the click (to read, to type
            # again): the pointer leaves the control, so what the app does
            # when it is left (undo the reset on leaveEvent, say) is part
            # of the reset the judge sees.
            self.move_off(screen, x, y, width, height)
            if nth in self.frame_after_clicks:
                # The window once what the click did has settled; the moment
                # is this process's, whatever the harness reports.
                self.take(f"click:{nth}", settle=True)
        return {"clock_moved": moved, "pointer": bool(ok), "at": [round(target_x), round(target_y)], "clicked": bool(clicked)}

    def travel(self, screen, target_x, target_y, steps, wobble_px):
        """The pointer, from where it rests, to (target_x, target_y) in
        `steps` eased moves with a little wobble (not a straight machine
        line); True when every move was sent."""
        start_x, start_y = self._pointer_at or (screen.width * 0.5, screen.height * 0.55)
        ok = True
        for step in range(1, steps + 1):
            eased = 1 - (1 - step / steps) ** 2
            wobble = 0 if step == steps else (random.random() - 0.5) * wobble_px
            ok &= screen.pointer(start_x + (target_x - start_x) * eased + wobble, start_y + (target_y - start_y) * eased + wobble)
            time.sleep(POINTER_STEP_S)
        self._pointer_at = (target_x, target_y)
        return ok

    def click_at(self, screen, rect):
        """The pointer travels into `rect` (the harness's word for where a
        control is: a lie only misdirects the click) and clicks there as a
        person does; [x, y] clicked, or None."""
        x, y, width, height = (int(v) for v in rect)
        target_x = x + width / 2 + (random.random() - 0.5) * min(width / 3, 10)
        target_y = y + height / 2 + (random.random() - 0.5) * min(height / 3, 4)
        ok = self.travel(screen, target_x, target_y, DIALOG_POINTER_STEPS, 4)
        time.sleep(a_while(POINTER_REST_S))
        ok &= screen.sync(timeout=1.0)
        if not (ok and self.click(screen, target_x, target_y)):
            return None
        return [round(target_x), round(target_y)]

    def type_prompt(self, rect, clear):
        """The turn handed out last is typed as a person types it: after a
        moment, the pointer goes into the input at `rect` and clicks there
        (the focus a person gives it), Ctrl+A selects what it holds when
        `clear`, then each character is a key pressed and released (Shift
        held for capitals and shifted signs), the app's clock moved before
        each key so that its timestamps keep a person's pace. The text is
        this process's own (the turn it gave), never the harness's word."""
        self.take_pending_replies()
        screen = self.screen
        turn = self.turns[self._next_turn - 1] if 0 < self._next_turn <= len(self.turns) else None
        if turn is None or screen is None or self._stopped or not _is_rect(rect):
            return {"typed": 0, "why": "no screen or no turn given"}
        if self._typings >= MAX_TYPINGS:
            return {"typed": 0, "why": "too many prompts typed"}
        return self.type_text(rect, turn["prompt"], clear)

    def type_text(self, rect, text, clear):
        """`text` typed into the input at `rect` as a person does (see
        type_prompt), after a moment of the app's clock."""
        screen = self.screen
        if screen is None or self._stopped or not _is_rect(rect):
            return {"typed": 0, "why": "no screen, or no place to type"}
        if any(not 0x20 <= ord(c) <= 0xFF for c in text):
            return {"typed": 0, "why": "the prompt has characters the screen's keyboard cannot type", "untypable": True}
        if self._keys + len(text) > MAX_TYPED_KEYS:
            return {"typed": 0, "why": "too many keys typed"}
        self._typings += 1
        moved = move_clock(a_while(BEFORE_TYPING_SECONDS))
        at = self.click_at(screen, rect)
        if at is None:
            return {"typed": 0, "why": "the click into the input was not read", "clock_moved": moved}
        if clear:
            self.chord((KEYSYM_CONTROL,), ord("a"))
        started = time.monotonic()
        typed = self.type_keys([(ord(c), (KEYSYM_SHIFT,) if c in SHIFTED else ()) for c in text])
        self._keys += typed
        return {"typed": typed, "of": len(text), "at": at, "clock_moved": moved, "ms": round((time.monotonic() - started) * 1000)}

    def type_value(self, rect, enter):
        """The open `set_N` step's value, typed as a person types it into
        the control at `rect`: a click into it, Ctrl+A over what it holds,
        the value's characters (Return between a text's lines), then Return
        when `enter`. The value is the job's (the task's), never the
        harness's word; once a step."""
        self.take_pending_replies()
        screen = self.screen
        step = self.open_step
        if not step.startswith("set_") or not step[len("set_"):].isdigit():
            return {"typed": 0, "why": "no set step is open"}
        nth = int(step[len("set_"):]) - 1
        text = value_text(self.set_values[nth]) if 0 <= nth < len(self.set_values) else None
        if text is None:
            return {"typed": 0, "why": "the step's value is not text to type"}
        if screen is None or self._stopped or not _is_rect(rect):
            return {"typed": 0, "why": "no screen, or no place to type"}
        if any(c != "\n" and not 0x20 <= ord(c) <= 0xFF for c in text):
            return {"typed": 0, "why": "the value has characters the screen's keyboard cannot type", "untypable": True}
        if self._keys + len(text) > MAX_TYPED_KEYS:
            return {"typed": 0, "why": "too many keys typed"}
        moved = move_clock(a_while(BEFORE_TYPING_SECONDS))
        at = self.click_at(screen, rect)
        if at is None:
            return {"typed": 0, "why": "the click into the control was not read", "clock_moved": moved}
        self.chord((KEYSYM_CONTROL,), ord("a"))
        strokes = [(KEYSYM_RETURN, ()) if c == "\n" else (ord(c), (KEYSYM_SHIFT,) if c in SHIFTED else ()) for c in text]
        if enter:
            strokes.append((KEYSYM_RETURN, ()))
        typed = self.type_keys(strokes)
        self._keys += typed
        return {"typed": typed, "of": len(strokes), "at": at, "clock_moved": moved}

    def type_keys(self, strokes):
        """Types `strokes`, each (keysym, held modifier keysyms), as a person
        types, on the app's clock: a modifier goes down a moment before its
        key, gaps between keys drawn long-tailed (a steady rhythm with the
        odd pause), each key held its own while, released before the next
        goes down or, now and then, just after (a typist's roll). Every
        press and release is read (stamped) by the screen server on its
        own, after the clock moved to its moment. How many were typed."""
        # The moments (app seconds from now) of every key change, in order.
        changes = []
        now = 0.0
        previous_up = 0.0
        previous, previous_held = None, ()
        for keysym, held in strokes:
            at = now + key_gap()
            # A key pressed again is let go first; others roll now and then.
            if keysym == previous or held or previous_held or random.random() >= ROLL_SHARE:
                # The last key comes up before this one goes down.
                at = max(at, previous_up + a_while((0.005, 0.03)))
            for modifier in held:
                changes.append((at, modifier, True))
                at += a_while(MODIFIER_LEAD_SECONDS)
            changes.append((at, keysym, True))
            up = at + a_while(KEY_HOLD_SECONDS)
            changes.append((up, keysym, False))
            for modifier in reversed(held):
                up += a_while((0.01, 0.05))
                changes.append((up, modifier, False))
            now, previous_up, previous, previous_held = at, up, keysym, held
        changes.sort(key=lambda change: change[0])
        screen = self.keyboard()
        clock = 0.0
        typed = 0
        for at, keysym, down in changes:
            if screen.error:
                break
            move_clock(max(0.0, at - clock))
            clock = max(clock, at)
            # A late answer (a busy machine) does not stop the typing: the
            # keys are sent in order.
            screen.keys([(keysym, down)])
            typed += down and keysym not in MODIFIER_KEYSYMS
        return typed

    def keyboard(self):
        """A second connection to the screen server for typing: each key's
        sync answer carries what the app repainted since the last one, and
        at 8 bits a pixel that costs a quarter of the frames' 32. The
        frames' connection where it cannot be opened."""
        if self._keyboard is None:
            try:
                self._keyboard = screen_reader.Screen(SCREEN_PORT, connect_timeout=2.0, bits=8)
            except (OSError, screen_reader.ScreenError):
                self._keyboard = self.screen
        return self._keyboard

    def chord(self, held, keysym):
        """`keysym` struck with `held` down (Ctrl+A, Ctrl+Return); whether
        the screen took it."""
        return self.type_keys([(keysym, held)]) == 1

    def press(self, rect=None, key=None):
        """Sends the typed prompt as a person does: a click on the send
        control at `rect`, or the key that sends (`Return`, `Ctrl+Return`)
        struck on the focused input."""
        self.take_pending_replies()
        screen = self.screen
        if screen is None or self._stopped:
            return {"pressed": False}
        move_clock(a_while(POINTER_REST_S))
        if key in ("Return", "Ctrl+Return"):
            held = (KEYSYM_CONTROL,) if key == "Ctrl+Return" else ()
            return {"pressed": bool(self.chord(held, KEYSYM_RETURN)), "key": key}
        if not _is_rect(rect):
            return {"pressed": False}
        at = self.click_at(screen, rect)
        return {"pressed": at is not None, "at": at}

    def move_off(self, screen, x, y, width, height):
        """The pointer, from the control at (x, y, width, height), travels
        well clear of it (up and to the side, inside the screen) in a few
        steps, and rests there."""
        start_x, start_y = self._pointer_at
        away_x = min(max(8.0, x - 40.0 if x > screen.width / 2 else x + width + 40.0), screen.width - 8.0)
        away_y = min(max(8.0, y - 80.0), screen.height - 8.0)
        for step in range(1, 5):
            share = step / 4
            screen.pointer(start_x + (away_x - start_x) * share, start_y + (away_y - start_y) * share)
            time.sleep(POINTER_STEP_S)
        self._pointer_at = (away_x, away_y)
        screen.sync(timeout=1.0)

    def click(self, screen, x, y):
        """A person's left click at (x, y): the button pressed, held a
        moment, released there; True once the server has read both."""
        ok = screen.pointer(x, y, buttons=1)
        # Read before the hold starts, so the app stamps the press now.
        ok &= screen.sync(timeout=1.0)
        time.sleep(a_while(CLICK_HOLD_S))
        ok &= screen.pointer(x, y, buttons=0)
        ok &= screen.sync(timeout=1.0)
        return bool(ok)

    def dialog(self, rect):
        """A message box the reset opened, its accepting button at `rect`
        (the harness's word: a lie only misdirects the click): read for a
        person's while of the app's clock, then the pointer travels to the
        button and clicks it. Nothing is answered to the harness, which is
        inside the box's event loop until the click closes it."""
        self.take_pending_replies()
        if self._dialogs >= MAX_DIALOG_CLICKS:
            return {"clicked": False, "why": "too many dialogs"}
        self._dialogs += 1
        moved = move_clock(a_while(DIALOG_READ_SECONDS))
        screen = self.screen
        if screen is None or self._stopped or not _is_rect(rect):
            return {"clock_moved": moved, "clicked": False}
        at = self.click_at(screen, rect)
        return {"clock_moved": moved, "at": at, "clicked": at is not None}

    def file_dialog(self, rect, again):
        """A file dialog the scenario's click opened, its file name field at
        `rect` (the harness's word: a lie only misdirects the click). The
        name typed is this process's own copy of the step's path, then
        Return; `again` (the dialog still open: a completion list took the
        first Return) strikes Return once more. No answer line: the
        harness is inside the dialog's event loop."""
        self.take_pending_replies()
        index = self._file_dialogs
        if again:
            if not 0 < index <= len(self.file_paths) or self._file_returns >= MAX_FILE_RETURNS:
                return {"pressed": False, "why": "no dialog typed into, or too many Returns"}
            self._file_returns += 1
            pressed = self.chord((), KEYSYM_RETURN)
            self.saved_typing[index - 1]["pressed"] |= pressed
            return {"pressed": pressed, "again": True}
        if index >= len(self.file_paths):
            return {"typed": 0, "why": "no file dialog left to answer"}
        self._file_dialogs += 1
        path = self.file_paths[index]
        typing = self.type_text(rect, path, clear=True)
        typing["pressed"] = bool(typing.get("typed")) and self.chord((), KEYSYM_RETURN)
        typing["of"] = len(path)
        self.saved_typing.append(typing)
        return typing

    def read_saved(self, nth):
        """Reads the file the app saved through the `nth` file dialog, once
        its step ended: the typed path, or (an app that puts its own
        extension on) the newest file of the candidate's named like it.
        Opened without following links, only a regular file of the
        candidate's, at most MAX_SAVED_BYTES."""
        if nth >= len(self.file_paths) or nth < len(self.saved_files):
            return
        path = self.file_paths[nth]
        typing = self.saved_typing[nth] if nth < len(self.saved_typing) else None
        self.saved_files.append({"step": f"answer_file_dialog_{nth + 1}", "path": path, "typing": typing, "file": read_saved_file(path)})

    def after_reply(self, turn_index):
        """Called by the fake server when it answered turn `turn_index`."""
        with self._lock:
            count = self._replies.get(turn_index, 0)
            if count >= 2:
                return
            self._replies[turn_index] = count + 1
        key = (f"reply:{turn_index + 1}", count)
        timer = threading.Timer(FRAME_AFTER_REPLY_S, self._take_reply, args=(key,))
        timer.daemon = True
        with self._lock:
            self._pending_replies[key] = timer
        timer.start()

    def _take_reply(self, key):
        with self._lock:
            if self._pending_replies.pop(key, None) is None:
                return  # taken already, before an action
        self.take(key[0])

    def take_pending_replies(self):
        """Before the supervisor acts on the app again (a click, keys, the
        next turn): the frames still due after a reply are taken now, so
        that each shows the reply's moment, not what the action did."""
        with self._lock:
            due = list(self._pending_replies.items())
            self._pending_replies.clear()
        for key, timer in due:
            timer.cancel()
            self.take(key[0])

    def answer(self, payload=None):
        """One JSON line to the harness: the answer to what it asked."""
        try:
            self.child_stdin.write(json.dumps({"ok": True, **(payload or {})}).encode() + b"\n")
            self.child_stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def next_turn(self, index):
        """The turn the harness asks for, if it is the next one. The first
        is handed over once no request is being answered by the fake server
        (up to SETTLE_REQUESTS_S): an app still loading its models when its
        window showed is typed into only when it has them, as a person would
        wait (the harness has already waited for the app's threads)."""
        self.take_pending_replies()
        if index != self._next_turn or not 0 <= index < len(self.turns):
            return None
        if index == 0 and self.settle_requests is not None:
            started = time.monotonic()
            self.settled = {
                "idle": bool(self.settle_requests(SETTLE_REQUESTS_S)),
                "waited_ms": round((time.monotonic() - started) * 1000),
            }
        self._next_turn += 1
        return self.turns[index]

    def stop(self):
        self._stopped = True


# The most pids in use seen while the harness ran: a fork bomb slowed by a
# busy host may have had its processes killed off by the limit's failures
# just as the deadline came, and the peak still shows the explosion.
PIDS_PEAK = [0]


def wait_child(child, reports, deadline, busy):
    """Waits for the harness to finish; False when the deadline, moved on
    by the machine's stall (`busy`), passed. A run with half its pids limit
    in use gets no such allowance: the load is its own (a fork bomb), and
    it is judged by that limit at the plain deadline."""
    while True:
        pids = pids_in_use()
        PIDS_PEAK[0] = max(PIDS_PEAK[0], pids.get("current", 0))
        runaway = pids.get("max", 0) > 0 and 2 * pids.get("current", 0) >= pids["max"]
        remaining = (deadline if runaway else busy.deadline(deadline)) - time.monotonic()
        if remaining <= 0:
            busy.applied = 0.0 if runaway else busy.granted()
            return False
        if reports.done.wait(timeout=min(remaining, 0.05)):
            # Give the harness a moment to exit on its own after "done"
            # (it exits right after saying it).
            wait_exit(child, min(busy.deadline(deadline) - time.monotonic(), 2.0))
            return True
        if child.poll() is not None:
            return True


def wait_exit(child, timeout):
    """Waits up to `timeout` s for `child` to exit: woken by the exit itself
    (a pidfd becomes readable), not by polling; polls where pidfds are
    refused (an old kernel, a seccomp profile without pidfd_open)."""
    end = time.monotonic() + max(0.0, timeout)
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            select.select([pidfd], [], [], max(0.0, end - time.monotonic()))
        finally:
            os.close(pidfd)
    while child.poll() is None and time.monotonic() < end:
        time.sleep(0.005)


def kill_tree(child):
    """Kills the harness and whatever it started in its process group."""
    for target in (lambda: os.killpg(child.pid, signal.SIGKILL), child.kill):
        try:
            target()
        except OSError:
            pass


def describe_exit(status):
    if status is None:
        return {"code": None, "signal": None}
    if status < 0:
        return {"code": None, "signal": -status}
    return {"code": status, "signal": None}


class CappedReader:
    """Drains a pipe in a thread, keeping the first `cap` bytes."""

    def __init__(self, pipe, cap):
        self.cap = cap
        self.total = 0
        self._chunks = []
        self._kept = 0
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe):
        while True:
            try:
                chunk = pipe.read1(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self.total += len(chunk)
            if self._kept < self.cap:
                piece = chunk[: self.cap - self._kept]
                self._chunks.append(piece)
                self._kept += len(piece)

    def finish(self, timeout):
        # A detached grandchild may hold the pipe open: do not wait for it.
        self._thread.join(timeout)

    def text(self):
        return b"".join(self._chunks).decode("utf-8", "replace")


class ReportReader:
    """Reads the harness's JSON-lines reports from its private pipe."""

    def __init__(self, fd):
        self.items = []
        self.dropped = 0
        self.platform = "offscreen"
        # Set once the job is handed over: serves checkpoints and the clock.
        self.frames = None
        self.done = threading.Event()
        self._ready = threading.Event()
        self.ready_seen = False
        self._size = 0
        self._thread = threading.Thread(target=self._run, args=(fd,), daemon=True)
        self._thread.start()

    def _run(self, fd):
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._take(line)
                if len(buffer) > MAX_REPORT_LINE:
                    buffer = b""
                    self.dropped += 1
        self.done.set()
        self._ready.set()

    def _take(self, line):
        self._size += len(line)
        if self._size > MAX_REPORT_TOTAL:
            self.dropped += 1
            return
        try:
            item = json.loads(line)
        except ValueError:
            self.dropped += 1
            return
        if not isinstance(item, dict):
            self.dropped += 1
            return
        kind = item.get("type")
        if kind == "ready":
            self.ready_seen = True
            self._ready.set()
            return
        item["received"] = time.monotonic()
        self.items.append(item)
        frames = self.frames
        if frames is None:
            return
        if kind == "checkpoint":
            frames.checkpoint(str(item.get("name")))
            frames.answer()
        elif kind == "idle":
            item["clock_moved"] = frames.idle(item.get("seconds"))
            frames.answer()
        elif kind == "approach":
            item["approach"] = frames.approach(item.get("rect"))
            frames.answer(item["approach"])
        elif kind == "type":
            item["typing"] = frames.type_prompt(item.get("rect"), item.get("clear") is True)
            frames.answer(item["typing"])
        elif kind == "press":
            item["pressing"] = frames.press(item.get("rect"), item.get("key"))
            frames.answer(item["pressing"])
        elif kind == "type_value":
            item["typing"] = frames.type_value(item.get("rect"), item.get("enter") is True)
            frames.answer(item["typing"])
        elif kind == "step_start":
            frames.open_step = str(item.get("name", ""))
        elif kind == "file_dialog":
            # No answer line, as for a message box.
            item["file_dialog"] = frames.file_dialog(item.get("rect"), item.get("again") is True)
        elif kind == "step" and str(item.get("name", "")).startswith("answer_file_dialog_"):
            name = str(item["name"])
            if name[len("answer_file_dialog_"):].isdigit():
                frames.read_saved(int(name[len("answer_file_dialog_"):]) - 1)
        elif kind == "dialog":
            # No answer line: the harness is inside the box's event loop.
            item["dialog"] = frames.dialog(item.get("rect"))
        elif kind == "turn":
            turn = frames.next_turn(item.get("index"))
            frames.answer({"turn": turn} if turn else {"ok": False})
        if kind == "done":
            self.done.set()

    def wait_ready(self, timeout):
        """True once the harness said it is ready; False if it died first."""
        self._ready.wait(timeout)
        return self.ready_seen

    def finish(self, timeout):
        self._thread.join(timeout)


def pids_in_use():
    """{"current", "max"} of the container's pids cgroup (v1 or v2), or {}."""
    for base in ("/sys/fs/cgroup/pids/", "/sys/fs/cgroup/"):
        try:
            with open(base + "pids.current") as f:
                current = int(f.read())
            with open(base + "pids.max") as f:
                limit = f.read().strip()
        except (OSError, ValueError):
            continue
        peak = max(current, PIDS_PEAK[0])
        return {"current": current, "peak": peak, "max": int(limit) if limit.isdigit() else 0}
    return {}


def note_deadline(pids):
    """Says at once, on the container's stderr, which limits the run was up
    against when its deadline came. Killing hundreds of niced processes can
    take seconds under load: should the host's wall clock end the run before
    the result line is out, this line still tells a bomb from a hang."""
    counters = {} if "QTJUDGE_WORK_ROOT" in os.environ else cgroup_counters()
    sys.stderr.write("qtjudge-deadline " + json.dumps({"pids": pids, **counters}) + "\n")
    sys.stderr.flush()


def cgroup_counters():
    """Memory and pids counters of the container's cgroup (v1 or v2)."""
    found = {}

    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    peak = read("/sys/fs/cgroup/memory/memory.max_usage_in_bytes") or read("/sys/fs/cgroup/memory.peak")
    if peak:
        found["peak_memory_bytes"] = int(peak.strip())
    oom = read("/sys/fs/cgroup/memory/memory.oom_control") or read("/sys/fs/cgroup/memory.events")
    if oom:
        for line in oom.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                found["oom_kills"] = int(value)
    pids = read("/sys/fs/cgroup/pids/pids.events") or read("/sys/fs/cgroup/pids.events")
    if pids:
        for line in pids.splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                found["pids_limit_hits"] = int(value)
    return found


if __name__ == "__main__":
    sys.exit(main())
