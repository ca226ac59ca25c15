"""Typed views of the service's JSON: a verdict (:class:`Verification`), a
job, a batch and its leaderboard, a task, the health probe; and
:class:`Answer`, one answer of a batch.

Each class keeps the JSON it was read from in ``raw`` (fields this version
of the client does not name are there). Field names are the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Union

__all__ = [
    "Answer",
    "VerificationId",
    "BatchId",
    "Label",
    "Status",
    "HistoryCleared",
    "UnrequestedChange",
    "Missing",
    "Step",
    "Verification",
    "Job",
    "Progress",
    "Counts",
    "BatchRow",
    "Batch",
    "Rate",
    "LeaderboardRow",
    "Leaderboard",
    "Task",
    "Health",
]

Json = dict[str, Any]



class VerificationId(str):
    """A verification's id, as ``Client.submit`` returns it: a ``str`` that
    ``Client.wait`` knows to be a verification's."""


class BatchId(str):
    """A batch's id, as ``Client.submit_batch`` returns it."""


Label = Literal["flawless", "unrequested_changes", "fail", "error"]
Status = Literal["queued", "running", "done", "error"]


class _AnswerOptions(TypedDict, total=False):
    model: str
    task: str
    sample: Union[str, int]
    metadata: dict[str, Any]


class Answer(_AnswerOptions):
    """One answer of a batch: the model's raw ``output`` and, optionally,
    its ``model``, ``task``, ``sample`` (which of the model's answers to the
    task it is; numbered 1, 2, ... when absent) and free ``metadata``."""

    output: str


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _dicts(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class HistoryCleared:
    """Whether the reset cleared each plane of the conversation (``None``:
    the run did not get that far)."""

    memory: bool | None
    screen: bool | None
    next_request: bool | None

    @property
    def all(self) -> bool:
        return self.memory is True and self.screen is True and self.next_request is True

    @classmethod
    def from_json(cls, data: Json) -> HistoryCleared:
        return cls(
            memory=_opt_bool(data.get("memory")),
            screen=_opt_bool(data.get("screen")),
            next_request=_opt_bool(data.get("next_request")),
        )


@dataclass(frozen=True)
class UnrequestedChange:
    """A change nobody asked for (what makes tier 2): ``source`` is
    ``static`` or ``layout``."""

    source: str
    kind: str
    detail: str
    line: int | None

    @classmethod
    def from_json(cls, data: Json) -> UnrequestedChange:
        return cls(
            source=str(data.get("source", "")),
            kind=str(data.get("kind", "")),
            detail=str(data.get("detail", "")),
            line=_opt_int(data.get("line")),
        )


@dataclass(frozen=True)
class Missing:
    """An original definition the answer left out (a snippet's evidence)."""

    kind: str
    name: str
    original_line: int | None

    @classmethod
    def from_json(cls, data: Json) -> Missing:
        return cls(
            kind=str(data.get("kind", "")),
            name=str(data.get("name", "")),
            original_line=_opt_int(data.get("original_line")),
        )


@dataclass(frozen=True)
class Step:
    """One step of the harness (``compile``, ``launch``, ``click_reset`` ...)."""

    name: str
    ok: bool
    ms: float
    detail: str

    @classmethod
    def from_json(cls, data: Json) -> Step:
        return cls(
            name=str(data.get("name", "")),
            ok=data.get("ok") is True,
            ms=_opt_float(data.get("ms")) or 0.0,
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class Verification:
    """One answer's verdict: ``tier`` 1 (flawless), 2 (unrequested changes),
    3 (fail, with its ``failure`` code) or ``None`` with ``label`` ``error``
    when it could not be judged (an engine fault, never the answer's; see
    ``error``). ``reason`` says why in a sentence."""

    model: str
    task: str
    tier: int | None
    label: Label
    failure: str | None
    reason: str
    sample: str | None = None
    metadata: Json | None = None
    history_cleared: HistoryCleared | None = None
    unrequested_changes: list[UnrequestedChange] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    error: str | None = None
    run_id: str | None = None
    duration_ms: int | None = None
    #: The verification's id in the service, when known.
    id: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def judged(self) -> bool:
        """Tier 1, 2 or 3 (not an engine fault)."""
        return self.tier is not None

    @property
    def passed(self) -> bool:
        """Tier 1 or 2: the reset works."""
        return self.tier in (1, 2)

    @property
    def flawless(self) -> bool:
        return self.tier == 1

    @classmethod
    def from_json(cls, data: Json, *, id: str | None = None) -> Verification:
        label = data.get("label")
        history = data.get("history_cleared")
        metadata = data.get("metadata")
        sample = data.get("sample")
        return cls(
            model=str(data.get("model", "")),
            task=str(data.get("task", "")),
            tier=_opt_int(data.get("tier")),
            label=label if label in ("flawless", "unrequested_changes", "fail") else "error",
            failure=_opt_str(data.get("failure")),
            reason=str(data.get("reason") or ""),
            sample=str(sample) if sample is not None else None,
            metadata=metadata if isinstance(metadata, dict) else None,
            history_cleared=HistoryCleared.from_json(history) if isinstance(history, dict) else None,
            unrequested_changes=[UnrequestedChange.from_json(c) for c in _dicts(data.get("unrequested_changes"))],
            missing=[Missing.from_json(m) for m in _dicts(data.get("missing"))],
            steps=[Step.from_json(s) for s in _dicts(data.get("steps"))],
            error=_opt_str(data.get("error")),
            run_id=_opt_str(data.get("run_id")),
            duration_ms=_opt_int(data.get("duration_ms")),
            id=id,
            raw=data,
        )


def _status(value: Any) -> Status:
    return value if value in ("queued", "running", "done", "error") else "queued"


@dataclass(frozen=True)
class Job:
    """A verification as the service tracks it (``GET /v1/verifications/{id}``):
    ``status`` ``queued``, ``running``, ``done`` or ``error`` (not judged),
    and once finished its ``result``."""

    id: str
    status: Status
    task: str
    model: str
    sample: str | None
    metadata: Json | None
    batch_id: str | None
    error: str | None
    attempts: int | None
    result: Verification | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error")

    def verification(self) -> Verification:
        """The verdict; for a job that ended without a result, a
        :class:`Verification` with ``label`` ``error`` and the job's error."""
        if self.result is not None:
            return self.result
        return Verification(
            model=self.model,
            task=self.task,
            tier=None,
            label="error",
            failure=None,
            reason=self.error or f"not judged (status {self.status})",
            sample=self.sample,
            metadata=self.metadata,
            error=self.error,
            id=self.id,
            raw={},
        )

    @classmethod
    def from_json(cls, data: Json) -> Job:
        job_id = str(data.get("id", ""))
        result = data.get("result")
        sample = data.get("sample")
        metadata = data.get("metadata")
        return cls(
            id=job_id,
            status=_status(data.get("status")),
            task=str(data.get("task") or ""),
            model=str(data.get("model") or ""),
            sample=str(sample) if sample is not None else None,
            metadata=metadata if isinstance(metadata, dict) else None,
            batch_id=_opt_str(data.get("batch_id")),
            error=_opt_str(data.get("error")),
            attempts=_opt_int(data.get("attempts")),
            result=Verification.from_json(result, id=job_id) if isinstance(result, dict) else None,
            raw=data,
        )


@dataclass(frozen=True)
class Progress:
    queued: int
    running: int
    done: int
    error: int

    @classmethod
    def from_json(cls, data: Json) -> Progress:
        return cls(**{k: _opt_int(data.get(k)) or 0 for k in ("queued", "running", "done", "error")})


@dataclass(frozen=True)
class Counts:
    """Answers per tier, and not judged (``error``)."""

    tier1: int
    tier2: int
    tier3: int
    error: int

    @classmethod
    def from_json(cls, data: Json) -> Counts:
        return cls(**{k: _opt_int(data.get(k)) or 0 for k in ("tier1", "tier2", "tier3", "error")})


@dataclass(frozen=True)
class BatchRow:
    """One answer of a batch as the batch's view lists it."""

    id: str
    model: str
    sample: str | None
    task: str
    status: Status
    tier: int | None
    label: Label | None
    failure: str | None
    reason: str | None

    @classmethod
    def from_json(cls, data: Json) -> BatchRow:
        label = data.get("label")
        sample = data.get("sample")
        return cls(
            id=str(data.get("id", "")),
            model=str(data.get("model") or ""),
            sample=str(sample) if sample is not None else None,
            task=str(data.get("task") or ""),
            status=_status(data.get("status")),
            tier=_opt_int(data.get("tier")),
            label=label if label in ("flawless", "unrequested_changes", "fail", "error") else None,
            failure=_opt_str(data.get("failure")),
            reason=_opt_str(data.get("reason")),
        )


@dataclass(frozen=True)
class Rate:
    """A share with its 95% Wilson score interval (``value``, ``low`` and
    ``high`` are ``None`` when nothing was judged)."""

    successes: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def from_json(cls, data: Json) -> Rate:
        return cls(
            successes=_opt_int(data.get("successes")) or 0,
            n=_opt_int(data.get("n")) or 0,
            value=_opt_float(data.get("value")),
            low=_opt_float(data.get("low")),
            high=_opt_float(data.get("high")),
        )


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's line (``task`` ``None``) or one model x task's.

    ``n`` counts the judged answers; ``pass_at`` maps each k to the
    unbiased pass@k (``None`` when fewer than k answers were judged);
    ``failures`` maps each tier-3 code to its count, most frequent first.
    """

    model: str
    task: str | None
    n: int
    tier1: int
    tier2: int
    tier3: int
    not_judged: int
    tier1_rate: Rate
    pass_rate: Rate
    pass_at: dict[int, float | None]
    failures: dict[str, int]
    median_ms: int | None

    @classmethod
    def from_json(cls, data: Json) -> LeaderboardRow:
        pass_at: dict[int, float | None] = {}
        for item in _dicts(data.get("pass_at")):
            k = _opt_int(item.get("k"))
            if k is not None:
                pass_at[k] = _opt_float(item.get("value"))
        failures = {
            str(f.get("code", "")): _opt_int(f.get("count")) or 0 for f in _dicts(data.get("failures"))
        }
        return cls(
            model=str(data.get("model", "")),
            task=_opt_str(data.get("task")),
            n=_opt_int(data.get("n")) or 0,
            tier1=_opt_int(data.get("tier1")) or 0,
            tier2=_opt_int(data.get("tier2")) or 0,
            tier3=_opt_int(data.get("tier3")) or 0,
            not_judged=_opt_int(data.get("not_judged")) or 0,
            tier1_rate=Rate.from_json(_dict(data.get("tier1_rate"))),
            pass_rate=Rate.from_json(_dict(data.get("pass_rate"))),
            pass_at=pass_at,
            failures=failures,
            median_ms=_opt_int(data.get("median_ms")),
        )


@dataclass(frozen=True)
class Leaderboard:
    """``models``: a line per model, best first (tier-1 rate, then pass
    rate, then n); ``by_task``: per model x task, when there are several
    tasks."""

    pass_at: list[int]
    tasks: list[str]
    models: list[LeaderboardRow]
    by_task: list[LeaderboardRow]
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    def model(self, name: str) -> LeaderboardRow:
        """The line of model ``name`` (``KeyError`` if it has none)."""
        for row in self.models:
            if row.model == name:
                return row
        raise KeyError(f"no leaderboard line for model {name!r}; it has {[r.model for r in self.models]}")

    @classmethod
    def from_json(cls, data: Json) -> Leaderboard:
        return cls(
            pass_at=[k for k in data.get("pass_at", []) if isinstance(k, int)],
            tasks=[t for t in data.get("tasks", []) if isinstance(t, str)],
            models=[LeaderboardRow.from_json(r) for r in _dicts(data.get("models"))],
            by_task=[LeaderboardRow.from_json(r) for r in _dicts(data.get("by_task"))],
            raw=data,
        )


@dataclass(frozen=True)
class Batch:
    """A batch (``GET /v1/batches/{id}``): its progress, its counts per tier,
    one row per answer and the leaderboard of the answers finished so far;
    ``table`` (the experiment's table) once done."""

    id: str
    status: Status
    task: str
    total: int
    progress: Progress
    counts: Counts
    leaderboard: Leaderboard
    verifications: list[BatchRow]
    table: str | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_json(cls, data: Json) -> Batch:
        return cls(
            id=str(data.get("id", "")),
            status=_status(data.get("status")),
            task=str(data.get("task") or ""),
            total=_opt_int(data.get("total")) or 0,
            progress=Progress.from_json(_dict(data.get("progress"))),
            counts=Counts.from_json(_dict(data.get("counts"))),
            leaderboard=Leaderboard.from_json(_dict(data.get("leaderboard"))),
            verifications=[BatchRow.from_json(r) for r in _dicts(data.get("verifications"))],
            table=_opt_str(data.get("table")),
            raw=data,
        )


@dataclass(frozen=True)
class Task:
    """A task the service grades against (``GET /v1/tasks``)."""

    id: str
    title: str
    prompt: str
    limits: Json
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Task:
        return cls(
            id=str(data.get("id", "")),
            title=str(data.get("title") or ""),
            prompt=str(data.get("prompt") or ""),
            limits=_dict(data.get("limits")),
            raw=data,
        )


@dataclass(frozen=True)
class Health:
    """``GET /healthz``: ``status`` ``ok``, or ``degraded`` with the reason in
    ``engine`` or ``store``."""

    status: str
    engine: Json
    store: Json
    queue: Json
    workers: int | None
    version: str | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(cls, data: Json) -> Health:
        return cls(
            status=str(data.get("status", "")),
            engine=_dict(data.get("engine")),
            store=_dict(data.get("store")),
            queue=_dict(data.get("queue")),
            workers=_opt_int(data.get("workers")),
            version=_opt_str(data.get("version")),
            raw=data,
        )
