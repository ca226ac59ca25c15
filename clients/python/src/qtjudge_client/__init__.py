"""A typed Python client of the qtjudge verifier service (``qtjudge serve``).

>>> from qtjudge_client import Client
>>> with Client("http://127.0.0.1:8080", token="...") as qtjudge:
...     verdict = qtjudge.verify(answer, model="devstral")
...     verdict.tier, verdict.failure, verdict.reason
"""

from .client import DEFAULT_TIMEOUT, DEFAULT_WAIT, AsyncClient, Client
from .errors import (
    ConnectionFailed,
    EngineUnavailable,
    InvalidInput,
    NotFound,
    QtjudgeError,
    QueueFull,
    ServerError,
    ShuttingDown,
    StoreUnavailable,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownTask,
    WaitTimeout,
)
from .types import (
    Answer,
    Batch,
    BatchId,
    BatchRow,
    Counts,
    Health,
    HistoryCleared,
    Job,
    Label,
    Leaderboard,
    LeaderboardRow,
    Missing,
    Progress,
    Rate,
    Status,
    Step,
    Task,
    UnrequestedChange,
    Verification,
    VerificationId,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "Answer",
    "Batch",
    "BatchId",
    "BatchRow",
    "Counts",
    "Health",
    "HistoryCleared",
    "Job",
    "Label",
    "Leaderboard",
    "LeaderboardRow",
    "Missing",
    "Progress",
    "Rate",
    "Status",
    "Step",
    "Task",
    "UnrequestedChange",
    "Verification",
    "VerificationId",
    "ConnectionFailed",
    "EngineUnavailable",
    "InvalidInput",
    "NotFound",
    "QtjudgeError",
    "QueueFull",
    "ServerError",
    "ShuttingDown",
    "StoreUnavailable",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownTask",
    "WaitTimeout",
]
