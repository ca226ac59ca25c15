"""What both clients do, once and without IO: every method is an *operation*,
a generator that yields what to do next (:class:`Send` a request,
:class:`Sleep`) and is sent back what came of it (the response, the
transport error, or ``None`` after a sleep). Request building, the mapping
of responses and errors, retry decisions and the waits' polling live here;
:class:`~qtjudge_client.Client` and :class:`~qtjudge_client.AsyncClient`
only carry the steps out, blocking or as coroutines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

import httpx

from .errors import (
    ConnectionFailed,
    NotFound,
    QtjudgeError,
    QueueFull,
    Unavailable,
    WaitTimeout,
    error_from_response,
    retry_after_seconds,
)
from .types import (
    Answer,
    Batch,
    BatchId,
    Health,
    Job,
    Leaderboard,
    Task,
    Verification,
    VerificationId,
)

log = logging.getLogger("qtjudge_client")

#: Seconds for one HTTP request (a held request gets its wait on top).
DEFAULT_TIMEOUT = 30.0
#: Seconds to wait for a verdict or a batch before :class:`WaitTimeout`.
DEFAULT_WAIT = 600.0
#: The service holds a request at most this long (its MAX_WAIT).
_SERVER_MAX_HOLD = 300
#: A batch is long-polled in holds of at most this many seconds.
_BATCH_HOLD = 60

AnswerLike = Union[Answer, Mapping[str, Any]]
AnyId = Union[VerificationId, BatchId, str]

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """One HTTP request to send as it is (its retries are the operation's)."""

    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    timeout: float


@dataclass(frozen=True)
class Sleep:
    """A pause before the operation's next step."""

    seconds: float


@dataclass(frozen=True)
class Done(Generic[T]):
    """An operation's result."""

    value: T


#: What a step came to: a :class:`Send`'s response or the transport error
#: it met, ``None`` after a :class:`Sleep`.
Outcome = Union[httpx.Response, httpx.TransportError, None]
Step = Union[Send, Sleep]
Operation = Generator[Step, Outcome, T]


def advance(operation: Operation[T], outcome: Outcome) -> Union[Send, Sleep, Done[T]]:
    """Gives ``outcome`` to ``operation`` (``None`` to start it) and returns
    its next step, or its result; its exceptions are the caller's."""
    try:
        return operation.send(outcome)
    except StopIteration as stop:
        return Done(stop.value)


class Core:
    """Configuration and the operations, shared by both clients."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float,
        retries: int,
        max_backoff: float,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_backoff = max_backoff
        self._headers = {"Accept": "application/json", "User-Agent": "qtjudge-client-python"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    # The requests, their answers and their retries.

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Operation[httpx.Response]:
        """One request; a refusal raised as its exception, after retries
        where sending it again is safe."""
        attempt = 0
        while True:
            outcome = yield Send(method, path, params, json, timeout or self.timeout)
            if isinstance(outcome, httpx.Response) and outcome.status_code < 400:
                return outcome
            error = self._refusal(method, path, outcome)
            delay = self._delay(attempt, error)
            if delay is None:
                raise error
            self._log_retry(method, path, error, delay, attempt)
            yield Sleep(delay)
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Operation[Any]:
        return _decode((yield from self._request(method, path, **kwargs)))

    def _refusal(self, method: str, path: str, outcome: Outcome) -> QtjudgeError:
        """The exception for an error response or a connection that was
        never made; one that failed after sending is raised at once."""
        if isinstance(outcome, httpx.Response):
            return error_from_response(
                outcome.status_code, _body(outcome), outcome.text, outcome.headers.get("retry-after")
            )
        if isinstance(outcome, httpx.ConnectError):
            return ConnectionFailed(
                f"cannot connect to {self.base_url}: {outcome}; is `qtjudge serve` running there?",
                code="connection_failed",
            )
        if isinstance(outcome, httpx.TransportError):
            # Sent, maybe received: not safe to send again.
            raise ConnectionFailed(f"{method} {path} failed: {outcome!r}", code="connection_failed") from outcome
        raise TypeError(f"{method} {path}: a request came to nothing (a transport's bug)")

    def _delay(self, attempt: int, error: QtjudgeError) -> float | None:
        """Seconds before try ``attempt + 1`` after ``error``, or ``None``
        when it must not be retried (or the tries are spent)."""
        retryable = isinstance(error, (QueueFull, Unavailable, ConnectionFailed))
        if not retryable or attempt >= self.retries:
            return None
        backoff = min(2.0**attempt, 30.0)
        wanted = error.retry_after if error.retry_after is not None else backoff
        return max(0.0, min(wanted, self.max_backoff))

    def _log_retry(self, method: str, path: str, error: QtjudgeError, delay: float, attempt: int) -> None:
        log.warning(
            "qtjudge: %s %s refused (%s); try %d of %d in %.1f s",
            method,
            path,
            error.code,
            attempt + 2,
            self.retries + 1,
            delay,
        )

    # The operations, one a public method of the clients.

    def _health(self) -> Operation[Health]:
        return Health.from_json((yield from self._json("GET", "/healthz")))

    def _tasks(self) -> Operation[list[Task]]:
        listed = yield from self._json("GET", "/v1/tasks")
        return [Task.from_json(t) for t in listed if isinstance(t, dict)]

    def _submit(self, body: dict[str, Any]) -> Operation[VerificationId]:
        return VerificationId((yield from self._json("POST", "/v1/verifications", json=body))["id"])

    def _verify(self, body: dict[str, Any], timeout: float | None, poll: float) -> Operation[Verification]:
        deadline = _deadline(timeout)
        hold = _SERVER_MAX_HOLD if timeout is None else max(0, min(int(timeout), _SERVER_MAX_HOLD))
        response = yield from self._request(
            "POST", "/v1/verifications", params={"wait": str(hold)}, json=body, timeout=hold + self.timeout
        )
        data = _decode(response)
        if response.status_code == 200:
            return Job.from_json(data).verification()
        job = yield from self._wait_job(data["id"], _remaining(deadline), poll)
        return job.verification()

    def _submit_batch(
        self, answers: Iterable[AnswerLike], task: str | None, callback_url: str | None
    ) -> Operation[BatchId]:
        items = [dict(a) for a in answers]
        params = _batch_params(task, callback_url)
        return BatchId((yield from self._json("POST", "/v1/batches", params=params, json=items))["id"])

    def _verification(self, verification_id: str) -> Operation[Job]:
        return Job.from_json((yield from self._json("GET", f"/v1/verifications/{verification_id}")))

    def _batch(self, batch_id: str, pass_at: Iterable[int]) -> Operation[Batch]:
        params = {"pass_at": _pass_at(pass_at)}
        return Batch.from_json((yield from self._json("GET", f"/v1/batches/{batch_id}", params=params)))

    def _wait(
        self, id_or_batch: AnyId, timeout: float | None, poll: float, pass_at: Iterable[int]
    ) -> Operation[Job | Batch]:
        if isinstance(id_or_batch, BatchId):
            return (yield from self._wait_batch(id_or_batch, timeout, poll, pass_at))
        if not isinstance(id_or_batch, VerificationId):
            try:
                yield from self._verification(id_or_batch)
            except NotFound:
                return (yield from self._wait_batch(id_or_batch, timeout, poll, pass_at))
        return (yield from self._wait_job(id_or_batch, timeout, poll))

    def _wait_job(self, job_id: str, timeout: float | None, poll: float) -> Operation[Job]:
        deadline = _deadline(timeout)
        while True:
            response = yield from self._request("GET", f"/v1/verifications/{job_id}")
            job = Job.from_json(_decode(response))
            if job.finished:
                return job
            remaining = _time_left(deadline, f"verification {job_id}", timeout)
            yield Sleep(_pause(response, poll, remaining))

    def _wait_batch(
        self, batch_id: str, timeout: float | None, poll: float, pass_at: Iterable[int]
    ) -> Operation[Batch]:
        deadline = _deadline(timeout)
        ks = _pass_at(pass_at)
        while True:
            remaining = _remaining(deadline)
            hold = _BATCH_HOLD if remaining is None else max(0, min(int(remaining), _BATCH_HOLD))
            started = time.monotonic()
            response = yield from self._request(
                "GET",
                f"/v1/batches/{batch_id}",
                params={"wait": str(hold), "pass_at": ks},
                timeout=hold + self.timeout,
            )
            batch = Batch.from_json(_decode(response))
            if batch.finished:
                return batch
            remaining = _time_left(deadline, f"batch {batch_id}", timeout)
            # The service held the request; pause only if it answered early.
            yield Sleep(max(0.0, _pause(response, poll, remaining) - (time.monotonic() - started)))

    def _results(self, batch_id: str, timeout: float | None, poll: float) -> Operation[list[Verification]]:
        batch = yield from self._wait_batch(batch_id, timeout, poll, (1,))
        report = yield from self._json("GET", f"/v1/batches/{batch_id}", params={"format": "json"})
        return _report_results(report, batch)

    def _leaderboard(
        self, batch_id: str, pass_at: Iterable[int], timeout: float | None, poll: float
    ) -> Operation[Leaderboard]:
        return (yield from self._wait_batch(batch_id, timeout, poll, pass_at)).leaderboard

    def _compare(
        self, batch_a: str, batch_b: str, timeout: float | None, poll: float
    ) -> Operation[dict[str, Any]]:
        deadline = _deadline(timeout)
        while True:
            response = yield from self._request("GET", f"/v1/batches/{batch_a}/compare/{batch_b}")
            data = _decode(response)
            if response.status_code != 202:
                assert isinstance(data, dict)
                return data
            what = f"the comparison of batches {batch_a} and {batch_b}"
            yield Sleep(_pause(response, poll, _time_left(deadline, what, timeout)))


def verification_body(
    output: str,
    model: str | None,
    task: str | None,
    sample: str | int | None,
    metadata: Mapping[str, Any] | None,
    callback_url: str | None,
) -> dict[str, Any]:
    """The JSON of ``POST /v1/verifications``: what was given, no nulls."""
    body: dict[str, Any] = {"output": output}
    for key, value in (
        ("model", model),
        ("task", task),
        ("sample", sample),
        ("metadata", dict(metadata) if metadata is not None else None),
        ("callback_url", callback_url),
    ):
        if value is not None:
            body[key] = value
    return body


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _decode(response: httpx.Response) -> Any:
    """The JSON body of a success, else the exception for the error."""
    body = _body(response)
    if response.status_code >= 400:
        raise error_from_response(response.status_code, body, response.text, response.headers.get("retry-after"))
    if body is None:
        raise QtjudgeError(
            f"expected JSON from {response.request.method} {response.request.url.path}, got "
            f"{response.headers.get('content-type', 'no content type')}: {response.text[:200]!r}",
            code="bad_response",
            status=response.status_code,
        )
    return body


def _batch_params(task: str | None, callback_url: str | None) -> dict[str, str]:
    params = {}
    if task is not None:
        params["task"] = task
    if callback_url is not None:
        params["callback_url"] = callback_url
    return params


def _pass_at(pass_at: Iterable[int]) -> str:
    return ",".join(str(k) for k in pass_at)


def _report_results(report: Any, batch: Batch) -> list[Verification]:
    """A finished batch's ``?format=json`` report as verdicts, each with
    its verification's id (matched by model, task and sample)."""
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise QtjudgeError("the batch's JSON report has no `results` list", code="bad_response", body=report)
    ids = {(r.model, r.task, r.sample): r.id for r in batch.verifications}
    out = []
    for item in report["results"]:
        if isinstance(item, dict):
            v = Verification.from_json(item)
            out.append(Verification.from_json(item, id=ids.get((v.model, v.task, v.sample))))
    return out


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _time_left(deadline: float | None, what: str, timeout: float | None) -> float | None:
    """Seconds left to wait for ``what`` (``None``: for ever); past the
    deadline, :class:`WaitTimeout`."""
    remaining = _remaining(deadline)
    if remaining is not None and remaining <= 0:
        raise WaitTimeout(
            f"{what} was not finished within {timeout} s; it keeps running: wait for it again",
            code="timeout",
        )
    return remaining


def _pause(response: httpx.Response, poll: float, remaining: float | None) -> float:
    """Seconds until the next look: the service's ``Retry-After`` when it
    sends one (a 202 may), else ``poll``; never past the deadline."""
    pause = retry_after_seconds(response.headers.get("retry-after"))
    pause = poll if pause is None else pause
    if remaining is not None:
        pause = min(pause, max(remaining, 0.0))
    return max(pause, 0.0)
