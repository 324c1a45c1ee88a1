"""A batch's replies given later, without a loop hop: what a direct batch actor may return."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Later"]

_PENDING = 0
_RESOLVED = 1
_FAILED = 2
_CANCELLED = 3


class Later:
    """The replies to one batch, given when the actor has them.

    A direct batch actor's ``receive_batch`` may return one instead of the list of
    replies; the actor keeps it and calls :meth:`resolve` (or :meth:`fail`) once
    the work is done, e.g. from the callback of a write it submitted. Unlike an
    :class:`asyncio.Future`, completing it runs the runtime's continuation at once,
    in the same callback: the askers are answered and the actor's next batch is
    taken without another pass of the event loop.

    Loop thread only. It completes once; a later :meth:`resolve` or :meth:`fail`
    (e.g. after the bus cancelled it at its shutdown deadline) does nothing.
    """

    __slots__ = ("_state", "_then", "_value")

    def __init__(self) -> None:
        self._state = _PENDING
        self._value: Any = None
        self._then: Callable[[Later], None] | None = None

    def resolve(self, results: Sequence[Any]) -> None:
        """Answer the batch: one reply (or exception instance) per message, in order."""
        self._complete(_RESOLVED, results)

    def fail(self, error: BaseException) -> None:
        """Fail every ask of the batch with ``error``."""
        self._complete(_FAILED, error)

    def cancel(self) -> bool:
        """Give up on the batch (the bus closed): its askers get ``ShuttingDown``."""
        if self._state != _PENDING:
            return False
        self._complete(_CANCELLED, None)
        return True

    def done(self) -> bool:
        """Whether the batch was answered, failed or cancelled."""
        return self._state != _PENDING

    def cancelled(self) -> bool:
        """Whether it was cancelled."""
        return self._state == _CANCELLED

    def exception(self) -> BaseException | None:
        """The error it failed with, or ``None``."""
        error: BaseException | None = self._value if self._state == _FAILED else None
        return error

    def result(self) -> Any:
        """The replies it was resolved with."""
        return self._value if self._state == _RESOLVED else None

    def then(self, continuation: Callable[[Later], None]) -> None:
        """Run ``continuation(self)`` when it completes (at once if it has). Runtime only."""
        if self._state != _PENDING:
            continuation(self)
        else:
            self._then = continuation

    def _complete(self, state: int, value: Any) -> None:
        if self._state != _PENDING:
            return
        self._state = state
        self._value = value
        then, self._then = self._then, None
        if then is not None:
            then(self)

    def __repr__(self) -> str:
        state = ("pending", "resolved", "failed", "cancelled")[self._state]
        return f"<Later {state}>"
