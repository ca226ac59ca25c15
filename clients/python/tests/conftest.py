"""A real ``qtjudge serve`` for the client's tests: the release binary
(``QTJUDGE_BIN``, default ``target/release/qtjudge`` of this repository),
started on a free 127.0.0.1 port with a token and a temporary data folder,
on the fixture tasks; stopped with SIGTERM at the end. Needs Docker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from qtjudge_client import Client

REPO = Path(__file__).resolve().parents[3]
ANSWERS = REPO / "fixtures" / "outputs" / "reset-conversation"
TOKEN = "python-client-test-token"


@dataclass
class Service:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"qtjudge serve did not stop within 90 s; its log:\n{self.log_text()}")
        assert code == 0, f"qtjudge serve exited with {code}; its log:\n{self.log_text()}"


def binary() -> Path:
    path = Path(os.environ.get("QTJUDGE_BIN", REPO / "target" / "release" / "qtjudge"))
    if not path.is_file():
        pytest.fail(f"no qtjudge binary at {path}: run `cargo build --release` or set QTJUDGE_BIN")
    return path


def start_service(
    folder: Path, extra: list[str] | None = None, env: Mapping[str, str] | None = None, ready: bool = True
) -> Service:
    """Starts ``qtjudge serve``; with ``ready``, waits until ``/healthz`` says ``ok``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "serve.log"
    environment = {k: v for k, v in os.environ.items() if k != "QTJUDGE_TOKEN"}
    environment["QTJUDGE_LOG"] = "info"
    environment.update(env or {})
    process = subprocess.Popen(
        [
            str(binary()),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--data-dir",
            str(folder / "data"),
            "--tasks-dir",
            str(REPO / "fixtures" / "tasks"),
            "--grace-seconds",
            "60",
            *(extra or []),
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env=environment,
    )
    # Its first line names the port it got; read on a thread for a timeout.
    first: list[bytes] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    line = first[0].decode().strip() if first else ""
    if not line.startswith("listening on "):
        process.kill()
        raise AssertionError(f"qtjudge serve printed {line!r}, not its address; its log:\n{log.read_text()}")
    # Keeps the pipe drained for the server's life.
    threading.Thread(target=stdout.read, daemon=True).start()
    service = Service(url=line.removeprefix("listening on "), token=TOKEN, process=process, log=log)
    if ready:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{service.url}/healthz", timeout=5).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(f"qtjudge serve never became ready; its log:\n{service.log_text()}")
            time.sleep(0.2)
    return service


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # Two workers: the batch's answers run two at a time, as on CI's two cores.
    running = start_service(tmp_path_factory.mktemp("serve"), ["--workers", "2"])
    yield running
    running.stop()


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    with Client(service.url, token=service.token) as qtjudge:
        yield qtjudge


@dataclass(frozen=True)
class Expected:
    """A fixture answer's verdict, as its manifest gives it."""

    model: str
    tier: int
    failure: str | None


@pytest.fixture(scope="session")
def manifest() -> dict[str, Expected]:
    data = tomllib.loads((ANSWERS / "manifest.toml").read_text())
    return {
        a["model"]: Expected(a["model"], a["tier"], a["failure"] or None) for a in data["answer"]
    }


def answer(file: str) -> str:
    """A fixture answer's raw text."""
    return (ANSWERS / file).read_text()
