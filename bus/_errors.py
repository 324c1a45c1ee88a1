"""Errors raised by the bus: its actor runtime and its socket transport.

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
        ├── SubscriberLagged       a subscriber fell behind under the ``close`` policy
        ├── SocketInUse            a live server (or a non-socket file) holds the path
        ├── ConnectionClosed       this client was closed by its owner
        └── ConnectionBroken       the server could not be reached, or the connection
                                   broke (the OS error, if any, is the ``__cause__``)
"""

from __future__ import annotations

from contracts import ActorbusError, Timeout

__all__ = [
    "ActorStopped",
    "AskTimeout",
    "BusError",
    "ConnectionBroken",
    "ConnectionClosed",
    "SocketInUse",
    "SubscriberLagged",
]


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


class SocketInUse(BusError):
    """The socket path is taken: a live server listens there, or a non-socket file sits on it."""


class ConnectionClosed(BusError):
    """The client was closed by its owner; it sends and receives nothing more."""


class ConnectionBroken(BusError):
    """The server could not be reached or broke the connection; requests in flight are lost.

    Whether a request in flight was handled is unknown to the client: the server
    handles every request it read, so a retry may repeat one.
    """
