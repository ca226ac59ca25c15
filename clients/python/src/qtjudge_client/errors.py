"""The service's JSON errors (``{"error": code, "message": ...}``) as exceptions.

Every exception is a :class:`QtjudgeError` with the API's ``code``, the HTTP
``status`` and the service's ``message`` (which says what to do); the
subclasses let a caller catch a kind of refusal without comparing codes.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "QtjudgeError",
    "Unauthorized",
    "NotFound",
    "InvalidInput",
    "UnknownTask",
    "TooLarge",
    "QueueFull",
    "Unavailable",
    "EngineUnavailable",
    "StoreUnavailable",
    "ShuttingDown",
    "ServerError",
    "ConnectionFailed",
    "WaitTimeout",
    "error_from_response",
]


class QtjudgeError(Exception):
    """A refusal or fault of the service, or of the way to it.

    ``code`` is the API's error code (``unauthorized``, ``queue_full``,
    ``empty_output``, ...; ``http_<status>`` when the body was not the
    service's JSON), ``status`` the HTTP status (``None`` when no response
    came), ``retry_after`` the seconds the service asked to wait, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class Unauthorized(QtjudgeError):
    """401: no token, or the wrong one (``Client(token=...)``, ``QTJUDGE_TOKEN``)."""


class NotFound(QtjudgeError):
    """404: no such verification, batch or artifact (``not_found``), or route."""


class InvalidInput(QtjudgeError):
    """400, 408, 413, 414, 422, 431: the request itself was refused; resending
    it unchanged gets the same answer."""


class UnknownTask(InvalidInput):
    """422 ``unknown_task``: ``Client.tasks()`` lists the tasks."""


class TooLarge(InvalidInput):
    """413 ``too_large``: an answer, batch or metadata over the service's limits."""


class QueueFull(QtjudgeError):
    """429 ``queue_full``: retry after ``retry_after`` seconds."""


class Unavailable(QtjudgeError):
    """503: the service cannot take work now; retry after ``retry_after``."""


class EngineUnavailable(Unavailable):
    """503 ``engine_unavailable``: the sandbox engine (Docker) is down."""


class StoreUnavailable(Unavailable):
    """503 ``store_unavailable``: the job store does not answer."""


class ShuttingDown(Unavailable):
    """503 ``shutting_down``: retry against the service's next start."""


class ServerError(QtjudgeError):
    """500 or another 5xx: a fault of the service (its log has the details)."""


class ConnectionFailed(QtjudgeError):
    """No HTTP answer: the service is not listening there, or the network failed."""


class WaitTimeout(QtjudgeError, TimeoutError):
    """The verification or batch was not finished within the wait's timeout
    (it keeps running: wait for it again with its id)."""


_BY_CODE: dict[str, type[QtjudgeError]] = {
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "no_such_route": NotFound,
    "unknown_task": UnknownTask,
    "too_large": TooLarge,
    "queue_full": QueueFull,
    "engine_unavailable": EngineUnavailable,
    "store_unavailable": StoreUnavailable,
    "shutting_down": ShuttingDown,
}


def _class_for(code: str, status: int) -> type[QtjudgeError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status == 401:
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 429:
        return QueueFull
    if status == 503:
        return Unavailable
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return InvalidInput
    return QtjudgeError


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the service sends whole seconds; an HTTP
    date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(status: int, body: Any, text: str, retry_after: str | None) -> QtjudgeError:
    """The exception for an error response: its JSON's code and message when
    the service sent them, else the status and the start of the body."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        message = str(body.get("message", ""))
    else:
        code = f"http_{status}"
        message = text.strip()[:500] or f"HTTP {status} without a body"
    cls = _class_for(code, status)
    return cls(
        message,
        code=code,
        status=status,
        retry_after=retry_after_seconds(retry_after),
        body=body,
    )
