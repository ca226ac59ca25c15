"""The client against a real ``qtjudge serve``: real answers verified in the
real sandbox, a batch and its leaderboard, and the API's refusals as the
client's exceptions (a dead engine's 503 and a full queue's 429 retried a
bounded number of times, after the service's ``Retry-After``, then raised)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from conftest import Expected, Service, answer, start_service
from qtjudge_client import (
    Answer,
    AsyncClient,
    Batch,
    BatchId,
    Client,
    EngineUnavailable,
    InvalidInput,
    Job,
    NotFound,
    QtjudgeError,
    QueueFull,
    Unauthorized,
    UnknownTask,
    VerificationId,
    WaitTimeout,
)


def test_health_and_tasks(client: Client) -> None:
    health = client.health()
    assert health.ok, health
    assert health.store.get("reachable") is True
    assert health.workers == 2
    tasks = {t.id: t for t in client.tasks()}
    assert "reset-conversation" in tasks, tasks
    assert "reset" in tasks["reset-conversation"].prompt.lower()


def test_verify_a_flawless_answer_in_the_sandbox(client: Client, manifest: dict[str, Expected]) -> None:
    expected = manifest["devstral"]
    verdict = client.verify(
        answer("devstral.md"),
        model="devstral",
        task="reset-conversation",
        metadata={"temperature": 0.2, "seed": 7},
    )
    assert (verdict.tier, verdict.failure) == (expected.tier, expected.failure), verdict
    assert verdict.tier == 1 and verdict.label == "flawless" and verdict.flawless and verdict.passed
    assert verdict.model == "devstral" and verdict.task == "reset-conversation"
    assert verdict.metadata == {"temperature": 0.2, "seed": 7}
    # It really ran: the harness's steps, and the three planes cleared.
    assert verdict.history_cleared is not None and verdict.history_cleared.all, verdict.history_cleared
    names = [s.name for s in verdict.steps]
    assert "click_reset" in names and all(s.ok for s in verdict.steps), verdict.steps
    assert verdict.id is not None and verdict.duration_ms
    assert verdict.raw["tier"] == 1


def test_verify_a_failing_answer_in_the_sandbox(client: Client, manifest: dict[str, Expected]) -> None:
    expected = manifest["trap-history-none"]
    verdict = client.verify(answer("trap-history-none.md"), model="trap-history-none")
    assert (verdict.tier, verdict.failure) == (expected.tier, expected.failure), verdict
    assert verdict.tier == 3 and verdict.label == "fail" and not verdict.passed
    # Without `task`, the service chose the task the answer resembles.
    assert verdict.task == "reset-conversation"
    assert verdict.reason
    assert any(not s.ok for s in verdict.steps), verdict.steps


def test_submit_then_wait(client: Client, manifest: dict[str, Expected]) -> None:
    expected = manifest["granite4-small"]
    job_id = client.submit(answer("granite4-small.md"), model="granite4-small", sample=3)
    assert isinstance(job_id, VerificationId) and job_id
    job = client.wait(job_id, timeout=240, poll=0.2)
    assert isinstance(job, Job) and job.finished and job.id == job_id
    verdict = job.verification()
    assert (verdict.tier, verdict.failure) == (expected.tier, expected.failure), verdict
    assert verdict.sample == "3" and job.sample == "3"
    assert verdict.missing, "a snippet's verdict names the definitions it left out"
    # A plain string id is found as a verification too.
    again = client.wait(str(job_id), timeout=10)
    assert isinstance(again, Job) and again.result == job.result


def test_a_batch_and_its_leaderboard(client: Client, manifest: dict[str, Expected]) -> None:
    answers: list[Answer] = [
        {"model": "devstral", "output": answer("devstral.md"), "metadata": {"run": "py"}},
        {"model": "devstral", "output": answer("devstral.md")},
        {"model": "gpt-oss", "output": answer("gpt-oss.md")},
        {"model": "granite4-small", "output": answer("granite4-small.md")},
        {"model": "trap-syntax-error", "output": answer("trap-syntax-error.md")},
    ]
    batch_id = client.submit_batch(answers, task="reset-conversation")
    assert isinstance(batch_id, BatchId)

    batch = client.wait(batch_id, timeout=480, pass_at=(1, 2))
    assert isinstance(batch, Batch) and batch.finished, batch
    assert batch.total == 5 and batch.progress.done == 5, batch.progress
    assert batch.table and "devstral" in batch.table
    counts = (batch.counts.tier1, batch.counts.tier2, batch.counts.tier3)
    want = [manifest[a["model"]].tier for a in answers]
    assert counts == (want.count(1), want.count(2), want.count(3)), batch.counts

    results = client.results(batch_id)
    assert len(results) == 5
    for verdict in results:
        expected = manifest[verdict.model]
        assert (verdict.tier, verdict.failure) == (expected.tier, expected.failure), verdict
        assert verdict.id in {row.id for row in batch.verifications}
    # Two answers of one model: samples 1 and 2, the first with its metadata.
    devstral = sorted((v for v in results if v.model == "devstral"), key=lambda v: v.sample or "")
    assert [v.sample for v in devstral] == ["1", "2"]
    assert devstral[0].metadata == {"run": "py"}

    board = client.leaderboard(batch_id, pass_at=(1, 2))
    assert board.pass_at == [1, 2] and board.tasks == ["reset-conversation"]
    assert [r.model for r in board.models][0] == "devstral", board.models
    row = board.model("devstral")
    assert (row.n, row.tier1, row.tier1_rate.successes, row.tier1_rate.value) == (2, 2, 2, 1.0)
    # 2 of 2: the Wilson interval is about [34%, 100%].
    assert row.tier1_rate.low == pytest.approx(0.342, abs=0.001)
    assert row.tier1_rate.high == pytest.approx(1.0)
    assert row.pass_at == {1: 1.0, 2: 1.0}
    snippet = board.model("granite4-small")
    assert (snippet.n, snippet.tier3, snippet.failures) == (1, 1, {"snippet": 1})
    assert snippet.pass_at == {1: 0.0, 2: None}, "pass@2 is undefined with one answer"
    assert board.model("gpt-oss").pass_rate.value == 1.0
    assert board.model("gpt-oss").tier1_rate.value == 0.0

    # A finished batch against itself: every answer unchanged.
    same = client.compare(batch_id, batch_id, timeout=30)
    assert (same["a"], same["b"]) == (f"batch {batch_id}", f"batch {batch_id}"), same
    assert same["comparison"]["unchanged"] == 5 and same["comparison"]["changed"] == [], same


def test_a_wrong_token_is_unauthorized(service: Service) -> None:
    for token in ("not-the-token", None):
        with Client(service.url, token=token) as wrong:
            with pytest.raises(Unauthorized) as refused:
                wrong.tasks()
            assert refused.value.status == 401 and refused.value.code == "unauthorized"
            assert "Bearer" in refused.value.message
            with pytest.raises(Unauthorized):
                wrong.submit("print('hello')")
            # The probe needs no token.
            assert wrong.health().ok


def test_bad_bodies_are_invalid_input(client: Client) -> None:
    with pytest.raises(InvalidInput) as blank:
        client.verify("   \n", model="blank")
    assert (blank.value.status, blank.value.code) == (422, "empty_output")
    with pytest.raises(InvalidInput) as misspelt:
        client.submit_batch([{"model": "m", "outptu": "print(1)"}])
    assert (misspelt.value.status, misspelt.value.code) == (400, "bad_request")
    assert "outptu" in misspelt.value.message
    with pytest.raises(InvalidInput) as fractional:
        client.submit("print(1)", sample=1.5)  # type: ignore[arg-type]
    assert fractional.value.code == "bad_request"
    with pytest.raises(InvalidInput) as empty:
        client.submit_batch([])
    assert (empty.value.status, empty.value.code) == (422, "empty_batch")
    with pytest.raises(UnknownTask) as unknown:
        client.submit("print(1)", task="no-such-task")
    assert unknown.value.code == "unknown_task" and "/v1/tasks" in unknown.value.message


def test_unknown_ids_are_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as job:
        client.wait(VerificationId("no-such-verification"), timeout=5)
    assert (job.value.status, job.value.code) == (404, "not_found")
    with pytest.raises(NotFound):
        client.results("no-such-batch", timeout=5)
    # A plain id is tried as a verification, then as a batch.
    with pytest.raises(NotFound):
        client.wait("neither", timeout=5)


def test_a_wait_times_out_and_the_job_goes_on(client: Client) -> None:
    job_id = client.submit(answer("qwen3-coder.md"), model="qwen3-coder")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as late:
        client.wait(job_id, timeout=0.3, poll=0.1)
    assert time.monotonic() - started < 5
    assert isinstance(late.value, TimeoutError) and late.value.code == "timeout"
    finished = client.wait(job_id, timeout=240)
    assert isinstance(finished, Job) and finished.finished


def test_the_async_client(service: Service, manifest: dict[str, Expected]) -> None:
    async def run() -> None:
        async with AsyncClient(service.url, token=service.token) as qtjudge:
            assert (await qtjudge.health()).ok
            both = await asyncio.gather(
                qtjudge.verify(answer("granite4-small.md"), model="granite4-small"),
                qtjudge.verify(answer("trap-no-code.md"), model="trap-no-code"),
            )
            for verdict in both:
                expected = manifest[verdict.model]
                assert (verdict.tier, verdict.failure) == (expected.tier, expected.failure), verdict
            with pytest.raises(InvalidInput):
                await qtjudge.submit("")
        async with AsyncClient(service.url, token="wrong") as wrong:
            with pytest.raises(Unauthorized):
                await wrong.tasks()

    asyncio.run(run())


def test_an_engine_outage_is_retried_then_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A service whose Docker engine is not there answers 503 engine_unavailable.
    dead = start_service(
        tmp_path, ["--workers", "1"], env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}, ready=False
    )
    try:
        deadline = time.monotonic() + 60
        with Client(dead.url, token=dead.token) as probe:
            while probe.health().engine.get("reachable") is not False:
                assert time.monotonic() < deadline, dead.log_text()
                time.sleep(0.2)
        with Client(dead.url, token=dead.token, retries=2, max_backoff=0.1) as qtjudge:
            caplog.set_level(logging.WARNING, logger="qtjudge_client")
            with pytest.raises(EngineUnavailable) as down:
                qtjudge.submit(answer("devstral.md"), model="devstral")
            assert isinstance(down.value, QtjudgeError) and down.value.status == 503
            assert down.value.retry_after == 10, "the service asks for 10 s"
            retries = [r for r in caplog.records if "engine_unavailable" in r.getMessage()]
            assert len(retries) == 2, [r.getMessage() for r in caplog.records]
            # A refusal that resending cannot change is not retried.
            caplog.clear()
            with pytest.raises(InvalidInput):
                qtjudge.submit(" ")
            assert not caplog.records
    finally:
        dead.stop()


def test_a_full_queue_is_retried_after_its_retry_after_then_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One worker, room for two waiting answers, and answers that hang until
    # the task's 30 s limit: once the worker holds one and two wait, the
    # queue stays full for about 30 s.
    full = start_service(tmp_path, ["--workers", "1", "--max-queue", "2"])
    hang = answer("trap-init-loop.md")
    try:
        with Client(full.url, token=full.token, retries=0) as filler:
            batch_id = filler.submit_batch(
                [{"model": "hang", "output": hang}, {"model": "hang", "output": hang}], task="reset-conversation"
            )
            deadline = time.monotonic() + 60
            while filler.batch(batch_id).progress.running < 1:
                assert time.monotonic() < deadline, full.log_text()
                time.sleep(0.1)
            filler.submit(hang, model="hang", task="reset-conversation")
            with pytest.raises(QueueFull) as first:
                filler.submit(hang, model="hang", task="reset-conversation")
        retry_after = first.value.retry_after
        assert (first.value.status, first.value.code) == (429, "queue_full"), first.value
        # A fresh service knows no verification time yet: it asks for a few seconds.
        assert retry_after is not None and 1 <= retry_after <= 10, retry_after

        caplog.set_level(logging.WARNING, logger="qtjudge_client")
        with Client(full.url, token=full.token, retries=2, max_backoff=30) as qtjudge:
            started = time.monotonic()
            with pytest.raises(QueueFull) as refused:
                qtjudge.submit(hang, model="late", task="reset-conversation")
            waited = time.monotonic() - started
        assert isinstance(refused.value, QtjudgeError)
        assert (refused.value.status, refused.value.code) == (429, "queue_full")
        assert refused.value.retry_after == retry_after and "queue is full" in refused.value.message
        retries = [r.getMessage() for r in caplog.records if "queue_full" in r.getMessage()]
        assert len(retries) == 2, retries
        assert all(f"in {retry_after:.1f} s" in m for m in retries), retries
        # Its Retry-After honoured: two waits of it before the third refusal.
        assert 2 * retry_after - 0.1 <= waited < 2 * retry_after + 10, waited

        async def once_more() -> float:
            async with AsyncClient(full.url, token=full.token, retries=1, max_backoff=30) as qtjudge:
                started = time.monotonic()
                with pytest.raises(QueueFull):
                    await qtjudge.submit(hang, model="late", task="reset-conversation")
                return time.monotonic() - started

        assert retry_after - 0.1 <= asyncio.run(once_more()) < retry_after + 10

        # The batch filling it still runs: its comparison is not ready.
        with Client(full.url, token=full.token) as qtjudge:
            with pytest.raises(WaitTimeout):
                qtjudge.compare(batch_id, batch_id, timeout=0.5, poll=0.1)
    finally:
        full.stop()
