"""The HTTP clients: :class:`Client` (blocking) and :class:`AsyncClient`,
the same methods as coroutines. Both send ``Authorization: Bearer <token>``,
turn the service's JSON errors into :mod:`qtjudge_client.errors`, and retry
only what is safe to send again: a request the service refused with 429
(queue full) or 503 (engine, store or service unavailable), or one that
never reached it (connection refused), a bounded number of times, after
the service's ``Retry-After`` or an exponential backoff.

What they do is written once, in :mod:`qtjudge_client._core`; each
client is the transport that carries its steps out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import httpx

from ._core import (
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT,
    AnswerLike,
    AnyId,
    Core,
    Done,
    Operation,
    Outcome,
    Send,
    Sleep,
    advance,
    verification_body,
)
from .types import Batch, BatchId, Health, Job, Leaderboard, Task, Verification, VerificationId

__all__ = ["Client", "AsyncClient", "DEFAULT_TIMEOUT", "DEFAULT_WAIT"]

T = TypeVar("T")


class Client(Core):
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

    def _run(self, operation: Operation[T]) -> T:
        """Carries ``operation`` out, blocking, and returns its result."""
        step = advance(operation, None)
        while not isinstance(step, Done):
            step = advance(operation, self._carry_out(step))
        return step.value

    def _carry_out(self, step: Send | Sleep) -> Outcome:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            return self._http.request(
                step.method, step.path, params=step.params, json=step.json, timeout=step.timeout
            )
        except httpx.TransportError as e:
            return e

    def health(self) -> Health:
        """``GET /healthz``: whether the service can verify now (no token needed)."""
        return self._run(self._health())

    def tasks(self) -> list[Task]:
        """The tasks the service grades against."""
        return self._run(self._tasks())

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
        body = verification_body(output, model, task, sample, metadata, callback_url)
        return self._run(self._submit(body))

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
        body = verification_body(output, model, task, sample, metadata, None)
        return self._run(self._verify(body, timeout, poll))

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
        return self._run(self._submit_batch(answers, task, callback_url))

    def verification(self, verification_id: str) -> Job:
        """A verification as it stands now."""
        return self._run(self._verification(verification_id))

    def batch(self, batch_id: str, *, pass_at: Iterable[int] = (1,)) -> Batch:
        """A batch as it stands now (its leaderboard of the answers finished so far)."""
        return self._run(self._batch(batch_id, pass_at))

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
        return self._run(self._wait(id_or_batch, timeout, poll, pass_at))

    def results(self, batch_id: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0) -> list[Verification]:
        """Waits for the batch, then returns every answer's :class:`Verification`
        in the order of ``qtjudge grade``'s report."""
        return self._run(self._results(batch_id, timeout, poll))

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
        return self._run(self._leaderboard(batch_id, pass_at, timeout, poll))

    def compare(
        self, batch_a: str, batch_b: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> dict[str, Any]:
        """Batch A against batch B (``{a, b, comparison}``), as ``qtjudge compare``,
        once both are finished: while either runs the service answers 202
        and this asks again after its ``Retry-After``; :class:`WaitTimeout`
        after ``timeout`` seconds."""
        return self._run(self._compare(batch_a, batch_b, timeout, poll))


class AsyncClient(Core):
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

    async def _run(self, operation: Operation[T]) -> T:
        """Carries ``operation`` out, awaiting each step, and returns its result."""
        step = advance(operation, None)
        while not isinstance(step, Done):
            step = advance(operation, await self._carry_out(step))
        return step.value

    async def _carry_out(self, step: Send | Sleep) -> Outcome:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self._http.request(
                step.method, step.path, params=step.params, json=step.json, timeout=step.timeout
            )
        except httpx.TransportError as e:
            return e

    async def health(self) -> Health:
        return await self._run(self._health())

    async def tasks(self) -> list[Task]:
        return await self._run(self._tasks())

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
        body = verification_body(output, model, task, sample, metadata, callback_url)
        return await self._run(self._submit(body))

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
        body = verification_body(output, model, task, sample, metadata, None)
        return await self._run(self._verify(body, timeout, poll))

    async def submit_batch(
        self,
        answers: Iterable[AnswerLike],
        *,
        task: str | None = None,
        callback_url: str | None = None,
    ) -> BatchId:
        return await self._run(self._submit_batch(answers, task, callback_url))

    async def verification(self, verification_id: str) -> Job:
        return await self._run(self._verification(verification_id))

    async def batch(self, batch_id: str, *, pass_at: Iterable[int] = (1,)) -> Batch:
        return await self._run(self._batch(batch_id, pass_at))

    async def wait(
        self,
        id_or_batch: AnyId,
        *,
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
        pass_at: Iterable[int] = (1,),
    ) -> Job | Batch:
        return await self._run(self._wait(id_or_batch, timeout, poll, pass_at))

    async def results(
        self, batch_id: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> list[Verification]:
        return await self._run(self._results(batch_id, timeout, poll))

    async def leaderboard(
        self,
        batch_id: str,
        *,
        pass_at: Iterable[int] = (1,),
        timeout: float | None = DEFAULT_WAIT,
        poll: float = 1.0,
    ) -> Leaderboard:
        return await self._run(self._leaderboard(batch_id, pass_at, timeout, poll))

    async def compare(
        self, batch_a: str, batch_b: str, *, timeout: float | None = DEFAULT_WAIT, poll: float = 1.0
    ) -> dict[str, Any]:
        return await self._run(self._compare(batch_a, batch_b, timeout, poll))
