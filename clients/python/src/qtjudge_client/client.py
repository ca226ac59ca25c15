"""The HTTP clients: :class:`Client` (blocking) and :class:`AsyncClient`,
the same methods as coroutines. Both send ``Authorization: Bearer <token>``,
turn the service's JSON errors into :mod:`qtjudge_client.errors`, and retry
only what is safe to send again: a request the service refused with 429
(queue full) or 503 (engine, store or service unavailable), or one that
never reached it (connection refused), a bounded number of times, after
the service's ``Retry-After`` or an exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Union

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

__all__ = ["Client", "AsyncClient", "DEFAULT_TIMEOUT", "DEFAULT_WAIT"]

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


class _Shared:
    """Configuration and the parts that do no IO, shared by both clients."""

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

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        """The JSON body of a success, else the exception for the error."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, body, response.text, response.headers.get("retry-after")
            )
        if body is None:
            raise QtjudgeError(
                f"expected JSON from {response.request.method} {response.request.url.path}, got "
                f"{response.headers.get('content-type', 'no content type')}: {response.text[:200]!r}",
                code="bad_response",
                status=response.status_code,
            )
        return body

    @staticmethod
    def _verification_body(
        output: str,
        model: str | None,
        task: str | None,
        sample: str | int | None,
        metadata: Mapping[str, Any] | None,
        callback_url: str | None,
    ) -> dict[str, Any]:
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

    @staticmethod
    def _batch_params(task: str | None, callback_url: str | None) -> dict[str, str]:
        params = {}
        if task is not None:
            params["task"] = task
        if callback_url is not None:
            params["callback_url"] = callback_url
        return params

    @staticmethod
    def _pass_at(pass_at: Iterable[int]) -> str:
        return ",".join(str(k) for k in pass_at)

    @staticmethod
    def _results(report: Any, batch: Batch) -> list[Verification]:
        """A finished batch's ``?format=json`` report as verdicts, each with
        its verification's id (matched by model, task and sample)."""
        if not isinstance(report, dict) or not isinstance(report.get("results"), list):
            raise QtjudgeError(
                "the batch's JSON report has no `results` list", code="bad_response", body=report
            )
        ids = {(r.model, r.task, r.sample): r.id for r in batch.verifications}
        out = []
        for item in report["results"]:
            if isinstance(item, dict):
                v = Verification.from_json(item)
                out.append(Verification.from_json(item, id=ids.get((v.model, v.task, v.sample))))
        return out

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    @staticmethod
    def _timed_out(what: str, ident: str, timeout: float | None) -> WaitTimeout:
        return WaitTimeout(
            f"{what} {ident} was not finished within {timeout} s; it keeps running: wait for it again",
            code="timeout",
        )


class Client(_Shared):
    """A blocking client of a ``qtjudge serve``.

    ``Client("http://127.0.0.1:8080", token=os.environ["QTJUDGE_TOKEN"])``;
    ``timeout`` is one request's, ``retries`` how many times a refused
    submission (429, 503) or a failed connection is tried again, waiting
    the service's ``Retry-After`` (at most ``max_backoff`` seconds).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 5,
        max_backoff: float = 60.0,
    ) -> None:
        super().__init__(base_url, token, timeout, retries, max_backoff)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, params=params, json=json, timeout=timeout or self.timeout
                )
                if response.status_code >= 400:
                    self._decode(response)
                return response
            except httpx.ConnectError as e:
                error: QtjudgeError = ConnectionFailed(
                    f"cannot connect to {self.base_url}: {e}; is `qtjudge serve` running there?",
                    code="connection_failed",
                )
            except httpx.TransportError as e:
                # Sent, maybe received: not safe to send again.
                raise ConnectionFailed(f"{method} {path} failed: {e!r}", code="connection_failed") from e
            except QtjudgeError as e:
                error = e
            delay = self._delay(attempt, error)
            if delay is None:
                raise error
            self._log_retry(method, path, error, delay, attempt)
            time.sleep(delay)
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decode(self._request(method, path, **kwargs))

    def health(self) -> Health:
        """``GET /healthz``: whether the service can verify now (no token needed)."""
        return Health.from_json(self._json("GET", "/healthz"))

    def tasks(self) -> list[Task]:
        """The tasks the service grades against."""
        return [Task.from_json(t) for t in self._json("GET", "/v1/tasks") if isinstance(t, dict)]

    def submit(
        self,
        output: str,
        *,
        model: str | None = None,
        task: str | None = None,
        sample: str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
    ) -> VerificationId:
        """Queues one answer (``output``: the model's raw answer) and returns
        its id at once; :meth:`wait` gives its verdict. Without ``task`` the
        service picks the task whose original the answer resembles."""
        body = self._verification_body(output, model, task, sample, metadata, callback_url)
        return VerificationId(self._json("POST", "/v1/verifications", json=body)["id"])

    def verify(
        self,
        output: str,
        *,
        model: str | None = None,
        task: str | None = None,
        sample: str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
    ) -> Verification:
        """Submits one answer and waits (up to ``timeout`` seconds, ``None``:
        for ever) for its :class:`Verification`. An answer the service could
        not judge comes back with ``tier`` ``None`` and ``label`` ``error``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        hold = _SERVER_MAX_HOLD if timeout is None else max(0, min(int(timeout), _SERVER_MAX_HOLD))
        body = self._verification_body(output, model, task, sample, metadata, None)
        response = self._request(
            "POST", "/v1/verifications", params={"wait": str(hold)}, json=body, timeout=hold + self.timeout
        )
        data = self._decode(response)
        if response.status_code == 200:
            return Job.from_json(data).verification()
        return self._wait_job(data["id"], self._remaining(deadline), poll).verification()

    def submit_batch(
        self,
        answers: Iterable[AnswerLike],
        *,
        task: str | None = None,
        callback_url: str | None = None,
    ) -> BatchId:
        """Queues many answers (each an :class:`Answer`: ``output`` and
        optionally ``model``, ``task``, ``sample``, ``metadata``) as one
        batch and returns its id; ``task`` grades those without one against it."""
        items = [dict(a) for a in answers]
        data = self._json("POST", "/v1/batches", params=self._batch_params(task, callback_url), json=items)
        return BatchId(data["id"])

    def verification(self, verification_id: str) -> Job:
        """A verification as it stands now."""
        return Job.from_json(self._json("GET", f"/v1/verifications/{verification_id}"))

    def batch(self, batch_id: str, *, pass_at: Iterable[int] = (1,)) -> Batch:
        """A batch as it stands now (its leaderboard of the answers finished so far)."""
        params = {"pass_at": self._pass_at(pass_at)}
        return Batch.from_json(self._json("GET", f"/v1/batches/{batch_id}", params=params))

    def wait(
        self,
        id_or_batch: AnyId,
        *,
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
        pass_at: Iterable[int] = (1,),
    ) -> Job | Batch:
        """Waits until a verification (a :class:`Job`) or a batch (a
        :class:`Batch`) is finished and returns it; :class:`WaitTimeout`
        after ``timeout`` seconds. A plain ``str`` id is looked up as a
        verification, then as a batch."""
        if isinstance(id_or_batch, BatchId):
            return self._wait_batch(id_or_batch, timeout, poll, pass_at)
        if not isinstance(id_or_batch, VerificationId):
            try:
                self.verification(id_or_batch)
            except NotFound:
                return self._wait_batch(id_or_batch, timeout, poll, pass_at)
        return self._wait_job(id_or_batch, timeout, poll)

    def _wait_job(self, job_id: str, timeout: float | None, poll: float) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            response = self._request("GET", f"/v1/verifications/{job_id}")
            job = Job.from_json(self._decode(response))
            if job.finished:
                return job
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("verification", job_id, timeout)
            pause = _pause(response, poll, remaining)
            time.sleep(pause)

    def _wait_batch(self, batch_id: str, timeout: float | None, poll: float, pass_at: Iterable[int]) -> Batch:
        deadline = None if timeout is None else time.monotonic() + timeout
        ks = self._pass_at(pass_at)
        while True:
            remaining = self._remaining(deadline)
            hold = _BATCH_HOLD if remaining is None else max(0, min(int(remaining), _BATCH_HOLD))
            started = time.monotonic()
            response = self._request(
                "GET",
                f"/v1/batches/{batch_id}",
                params={"wait": str(hold), "pass_at": ks},
                timeout=hold + self.timeout,
            )
            batch = Batch.from_json(self._decode(response))
            if batch.finished:
                return batch
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("batch", batch_id, timeout)
            # The service held the request; pause only if it answered early.
            time.sleep(max(0.0, _pause(response, poll, remaining) - (time.monotonic() - started)))

    def results(self, batch_id: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0) -> list[Verification]:
        """Waits for the batch, then returns every answer's :class:`Verification`
        in the order of ``qtjudge grade``'s report."""
        batch = self._wait_batch(batch_id, timeout, poll, (1,))
        report = self._json("GET", f"/v1/batches/{batch_id}", params={"format": "json"})
        return self._results(report, batch)

    def leaderboard(
        self,
        batch_id: str,
        *,
        pass_at: Iterable[int] = (1,),
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
    ) -> Leaderboard:
        """Waits for the batch, then returns its :class:`Leaderboard` with
        pass@k for each k of ``pass_at``."""
        return self._wait_batch(batch_id, timeout, poll, pass_at).leaderboard

    def compare(
        self, batch_a: str, batch_b: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> dict[str, Any]:
        """Batch A against batch B (``{a, b, comparison}``), as ``qtjudge compare``,
        once both are finished: while either runs the service answers 202
        and this asks again after its ``Retry-After``; :class:`WaitTimeout`
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            response = self._request("GET", f"/v1/batches/{batch_a}/compare/{batch_b}")
            data = self._decode(response)
            if response.status_code != 202:
                assert isinstance(data, dict)
                return data
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("the comparison of batches", f"{batch_a} and {batch_b}", timeout)
            time.sleep(_pause(response, poll, remaining))


class AsyncClient(_Shared):
    """:class:`Client`'s methods as coroutines (``async with AsyncClient(...)``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 5,
        max_backoff: float = 60.0,
    ) -> None:
        super().__init__(base_url, token, timeout, retries, max_backoff)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, timeout=timeout or self.timeout
                )
                if response.status_code >= 400:
                    self._decode(response)
                return response
            except httpx.ConnectError as e:
                error: QtjudgeError = ConnectionFailed(
                    f"cannot connect to {self.base_url}: {e}; is `qtjudge serve` running there?",
                    code="connection_failed",
                )
            except httpx.TransportError as e:
                raise ConnectionFailed(f"{method} {path} failed: {e!r}", code="connection_failed") from e
            except QtjudgeError as e:
                error = e
            delay = self._delay(attempt, error)
            if delay is None:
                raise error
            self._log_retry(method, path, error, delay, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decode(await self._request(method, path, **kwargs))

    async def health(self) -> Health:
        return Health.from_json(await self._json("GET", "/healthz"))

    async def tasks(self) -> list[Task]:
        return [Task.from_json(t) for t in await self._json("GET", "/v1/tasks") if isinstance(t, dict)]

    async def submit(
        self,
        output: str,
        *,
        model: str | None = None,
        task: str | None = None,
        sample: str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
    ) -> VerificationId:
        body = self._verification_body(output, model, task, sample, metadata, callback_url)
        return VerificationId((await self._json("POST", "/v1/verifications", json=body))["id"])

    async def verify(
        self,
        output: str,
        *,
        model: str | None = None,
        task: str | None = None,
        sample: str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
    ) -> Verification:
        deadline = None if timeout is None else time.monotonic() + timeout
        hold = _SERVER_MAX_HOLD if timeout is None else max(0, min(int(timeout), _SERVER_MAX_HOLD))
        body = self._verification_body(output, model, task, sample, metadata, None)
        response = await self._request(
            "POST", "/v1/verifications", params={"wait": str(hold)}, json=body, timeout=hold + self.timeout
        )
        data = self._decode(response)
        if response.status_code == 200:
            return Job.from_json(data).verification()
        job = await self._wait_job(data["id"], self._remaining(deadline), poll)
        return job.verification()

    async def submit_batch(
        self,
        answers: Iterable[AnswerLike],
        *,
        task: str | None = None,
        callback_url: str | None = None,
    ) -> BatchId:
        items = [dict(a) for a in answers]
        params = self._batch_params(task, callback_url)
        return BatchId((await self._json("POST", "/v1/batches", params=params, json=items))["id"])

    async def verification(self, verification_id: str) -> Job:
        return Job.from_json(await self._json("GET", f"/v1/verifications/{verification_id}"))

    async def batch(self, batch_id: str, *, pass_at: Iterable[int] = (1,)) -> Batch:
        params = {"pass_at": self._pass_at(pass_at)}
        return Batch.from_json(await self._json("GET", f"/v1/batches/{batch_id}", params=params))

    async def wait(
        self,
        id_or_batch: AnyId,
        *,
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
        pass_at: Iterable[int] = (1,),
    ) -> Job | Batch:
        if isinstance(id_or_batch, BatchId):
            return await self._wait_batch(id_or_batch, timeout, poll, pass_at)
        if not isinstance(id_or_batch, VerificationId):
            try:
                await self.verification(id_or_batch)
            except NotFound:
                return await self._wait_batch(id_or_batch, timeout, poll, pass_at)
        return await self._wait_job(id_or_batch, timeout, poll)

    async def _wait_job(self, job_id: str, timeout: float | None, poll: float) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            response = await self._request("GET", f"/v1/verifications/{job_id}")
            job = Job.from_json(self._decode(response))
            if job.finished:
                return job
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("verification", job_id, timeout)
            await asyncio.sleep(_pause(response, poll, remaining))

    async def _wait_batch(
        self, batch_id: str, timeout: float | None, poll: float, pass_at: Iterable[int]
    ) -> Batch:
        deadline = None if timeout is None else time.monotonic() + timeout
        ks = self._pass_at(pass_at)
        while True:
            remaining = self._remaining(deadline)
            hold = _BATCH_HOLD if remaining is None else max(0, min(int(remaining), _BATCH_HOLD))
            started = time.monotonic()
            response = await self._request(
                "GET",
                f"/v1/batches/{batch_id}",
                params={"wait": str(hold), "pass_at": ks},
                timeout=hold + self.timeout,
            )
            batch = Batch.from_json(self._decode(response))
            if batch.finished:
                return batch
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("batch", batch_id, timeout)
            await asyncio.sleep(max(0.0, _pause(response, poll, remaining) - (time.monotonic() - started)))

    async def results(
        self, batch_id: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> list[Verification]:
        batch = await self._wait_batch(batch_id, timeout, poll, (1,))
        report = await self._json("GET", f"/v1/batches/{batch_id}", params={"format": "json"})
        return self._results(report, batch)

    async def leaderboard(
        self,
        batch_id: str,
        *,
        pass_at: Iterable[int] = (1,),
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
    ) -> Leaderboard:
        return (await self._wait_batch(batch_id, timeout, poll, pass_at)).leaderboard

    async def compare(
        self, batch_a: str, batch_b: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            response = await self._request("GET", f"/v1/batches/{batch_a}/compare/{batch_b}")
            data = self._decode(response)
            if response.status_code != 202:
                assert isinstance(data, dict)
                return data
            remaining = self._remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise self._timed_out("the comparison of batches", f"{batch_a} and {batch_b}", timeout)
            await asyncio.sleep(_pause(response, poll, remaining))


def _pause(response: httpx.Response, poll: float, remaining: float | None) -> float:
    """Seconds until the next look: the service's ``Retry-After`` when it
    sends one (a 202 may), else ``poll``; never past the deadline."""
    pause = retry_after_seconds(response.headers.get("retry-after"))
    pause = poll if pause is None else pause
    if remaining is not None:
        pause = min(pause, max(remaining, 0.0))
    return max(pause, 0.0)
