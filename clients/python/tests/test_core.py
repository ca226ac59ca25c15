"""The clients' shared core without a server: an operation's steps fed
made-up outcomes, to pin which refusals are retried, after how long, and
which are raised at once."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pytest

from qtjudge_client import ConnectionFailed, InvalidInput, QueueFull, Unauthorized, VerificationId
from qtjudge_client._core import Core, Done, Operation, Outcome, Send, Sleep, advance

T = TypeVar("T")
URL = "http://127.0.0.1:9"


def core(retries: int = 5, max_backoff: float = 60.0) -> Core:
    return Core(URL, "token", 30.0, retries, max_backoff)


def answer(status: int, body: Any, retry_after: str | None = None) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("POST", URL))


def run(operation: Operation[T], outcomes: list[Outcome]) -> tuple[T, list[Send | Sleep]]:
    """Carries ``operation`` out against ``outcomes``, one a request; its
    result and every step it took."""
    steps: list[Send | Sleep] = []
    step = advance(operation, None)
    while not isinstance(step, Done):
        steps.append(step)
        step = advance(operation, None if isinstance(step, Sleep) else outcomes.pop(0))
    assert not outcomes, f"left unasked: {outcomes}"
    return step.value, steps


def test_refusals_and_unmade_connections_are_retried_after_their_wait() -> None:
    refused = answer(429, {"error": "queue_full", "message": "full"}, retry_after="90")
    unmade = httpx.ConnectError("connection refused")
    accepted = answer(202, {"id": "v1"})
    made, steps = run(core(max_backoff=20.0)._submit({"output": "x"}), [refused, unmade, accepted])
    assert made == VerificationId("v1")
    sends = [s for s in steps if isinstance(s, Send)]
    assert [(s.method, s.path, s.json) for s in sends] == [("POST", "/v1/verifications", {"output": "x"})] * 3
    # The service's Retry-After, at most max_backoff; then 2 s (the second try's backoff).
    assert [s.seconds for s in steps if isinstance(s, Sleep)] == [20.0, 2.0]


def test_what_resending_cannot_change_is_raised_at_once() -> None:
    with pytest.raises(InvalidInput) as blank:
        run(core()._submit({"output": " "}), [answer(422, {"error": "empty_output", "message": "blank"})])
    assert (blank.value.status, blank.value.code) == (422, "empty_output")
    with pytest.raises(Unauthorized):
        run(core()._tasks(), [answer(401, {"error": "unauthorized", "message": "Bearer"})])
    # Sent, maybe received: not sent again.
    with pytest.raises(ConnectionFailed):
        run(core()._submit({"output": "x"}), [httpx.ReadError("reset")])
    # The tries spent: the last refusal is raised.
    full = answer(429, {"error": "queue_full", "message": "full"}, retry_after="1")
    with pytest.raises(QueueFull) as late:
        run(core(retries=1)._submit({"output": "x"}), [full, full])
    assert late.value.retry_after == 1


def test_a_comparison_is_asked_again_after_its_retry_after_until_both_batches_are_finished() -> None:
    running = answer(202, {"status": "running", "running": ["b"]}, retry_after="3")
    compared = answer(200, {"a": "batch a", "b": "batch b", "comparison": {"unchanged": 1}})
    report, steps = run(core()._compare("a", "b", None, 1.0), [running, running, compared])
    assert report["comparison"] == {"unchanged": 1}
    assert [s.seconds for s in steps if isinstance(s, Sleep)] == [3.0, 3.0]
    assert {s.path for s in steps if isinstance(s, Send)} == {"/v1/batches/a/compare/b"}
