"""Errors raised by the actor runtime.

The runtime raises the wire errors of :mod:`contracts` where one fits
(``Overloaded``, ``ShuttingDown``) and these for conditions of its own::

    ActorbusError                  (contracts)
    ├── Overloaded                 a mailbox is full and the caller would not wait
    ├── ShuttingDown               the bus is closing or closed
    ├── Timeout
    │   └── AskTimeout             no reply within the ask's timeout
    └── BusError                   root of the runtime's own errors
        ├── ActorStopped           the actor stopped (restart budget spent, or passivated
        │                          while the bus closes); its mail went to dead letters
        └── SubscriberLagged       a subscriber fell behind under the ``close`` policy
"""

from __future__ import annotations

from contracts import ActorbusError, Timeout

__all__ = ["ActorStopped", "AskTimeout", "BusError", "SubscriberLagged"]


class BusError(ActorbusError):
    """Root of the actor runtime's own errors."""

    code = "InternalError"
    status = 500


class ActorStopped(BusError):
    """The actor has stopped; the message was routed to dead letters."""

    code = "Overloaded"
    status = 503


class AskTimeout(Timeout):
    """No reply arrived within the ask's timeout (the message may still be handled)."""


class SubscriberLagged(BusError):
    """The subscriber's buffer overflowed under the ``close`` policy; it missed items."""

    code = "Overloaded"
    status = 503

    def __init__(self, message: str = "", *, dropped: int = 0) -> None:
        super().__init__(message)
        self.dropped = dropped
