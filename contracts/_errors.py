"""The error codes of the actorbus protocol, each with one HTTP-style status.

Every error a client can see is an :class:`ActorbusError` subclass whose class
attributes ``code`` (the wire ``error.code``) and ``status`` are the single place
the mapping lives::

    ActorbusError
    ├── InvalidRequest      400  bad frame content, missing or mistyped field, unknown scope
    ├── InvalidEvent        400  an event that breaks the recording contract
    ├── OwnershipViolation  403  data outside the writing scope's branches
    ├── UnknownOp           404  the op is not one the service knows
    ├── MissingSessionPath  409  the session directory was never opened
    ├── EventTooLarge       413  one event line over ``max_event_bytes``
    ├── FrameTooLarge       413  one frame over ``max_frame_bytes``
    ├── PrivacyViolation    422  the document carries something private
    ├── LiveDataInvalid     422  the document fails its contract
    ├── LockBusy            423  the generated-data lock was not free in time
    ├── RecorderIOError     500  the session log write failed; nothing partial left
    ├── InternalError       500  an unexpected failure inside the service
    ├── ProviderError       502  an enrichment provider failed
    ├── Overloaded          503  a bound was reached; try again later
    ├── ShuttingDown        503  the service is stopping and takes no new work
    └── Timeout             504  a request was not answered within its deadline

Messages must be safe to show: never put a rejected secret or a private path in one.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERRORS",
    "ActorbusError",
    "EventTooLarge",
    "FrameTooLarge",
    "InternalError",
    "InvalidEvent",
    "InvalidRequest",
    "LiveDataInvalid",
    "LockBusy",
    "MissingSessionPath",
    "Overloaded",
    "OwnershipViolation",
    "PrivacyViolation",
    "ProviderError",
    "RecorderIOError",
    "ShuttingDown",
    "Timeout",
    "UnknownOp",
    "error_from_wire",
    "status_of",
]


class ActorbusError(Exception):
    """Root of every error with a wire code; ``code`` and ``status`` name it on the wire."""

    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)

    @property
    def message(self) -> str:
        """The safe, human-readable message carried on the wire."""
        return str(self.args[0]) if self.args else self.code


class InvalidRequest(ActorbusError):
    """The request is malformed: bad frame content, a missing or mistyped field."""

    code = "InvalidRequest"
    status = 400


class InvalidEvent(ActorbusError):
    """The event breaks the recording contract (missing or unsafe required field)."""

    code = "InvalidEvent"
    status = 400


class OwnershipViolation(ActorbusError):
    """The write carries data outside the branches its scope owns."""

    code = "OwnershipViolation"
    status = 403


class UnknownOp(ActorbusError):
    """The request names an op the service does not know."""

    code = "UnknownOp"
    status = 404


class MissingSessionPath(ActorbusError):
    """The session directory does not exist; open the session first."""

    code = "MissingSessionPath"
    status = 409


class EventTooLarge(ActorbusError):
    """The event's JSONL line is larger than ``max_event_bytes``."""

    code = "EventTooLarge"
    status = 413


class FrameTooLarge(ActorbusError):
    """The frame is larger than ``max_frame_bytes``."""

    code = "FrameTooLarge"
    status = 413


class PrivacyViolation(ActorbusError):
    """The browser-visible document would carry something private."""

    code = "PrivacyViolation"
    status = 422


class LiveDataInvalid(ActorbusError):
    """The live-data document fails its contract."""

    code = "LiveDataInvalid"
    status = 422


class LockBusy(ActorbusError):
    """The generated-data lock was held by a live owner past the wait limit."""

    code = "LockBusy"
    status = 423


class RecorderIOError(ActorbusError):
    """Writing the session log failed; no partial line was left behind."""

    code = "RecorderIOError"
    status = 500


class InternalError(ActorbusError):
    """An unexpected failure inside the service."""

    code = "InternalError"
    status = 500


class ProviderError(ActorbusError):
    """An enrichment provider failed or answered something unusable."""

    code = "ProviderError"
    status = 502


class Overloaded(ActorbusError):
    """A bound was reached (a full mailbox, too many requests in flight)."""

    code = "Overloaded"
    status = 503


class ShuttingDown(ActorbusError):
    """The service is shutting down and takes no new work."""

    code = "ShuttingDown"
    status = 503


class Timeout(ActorbusError):
    """The request was not answered within its deadline."""

    code = "Timeout"
    status = 504


#: Every wire error by its code: the one table clients and servers share.
ERRORS: dict[str, type[ActorbusError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidEvent,
        OwnershipViolation,
        UnknownOp,
        MissingSessionPath,
        EventTooLarge,
        FrameTooLarge,
        PrivacyViolation,
        LiveDataInvalid,
        LockBusy,
        RecorderIOError,
        InternalError,
        ProviderError,
        Overloaded,
        ShuttingDown,
        Timeout,
    )
}


def status_of(code: str) -> int:
    """Return the HTTP-style status of a wire error code (500 for an unknown one)."""
    cls = ERRORS.get(code)
    return cls.status if cls is not None else 500


def error_from_wire(code: str, message: str) -> ActorbusError:
    """Rebuild the exception a peer reported, falling back to :class:`InternalError`."""
    cls = ERRORS.get(code, InternalError)
    return cls(message)
