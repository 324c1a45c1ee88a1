"""The live-data write pipeline: check, lock, load a base, merge, validate, gate, write.

Everything here blocks (file IO, lock waits) and runs in a worker thread, one
write at a time: the live-data actor sequences the calls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from contracts import (
    ActorbusError,
    InternalError,
    InvalidRequest,
    LiveBase,
    LiveDataInvalid,
    LiveWriteResult,
    LockRelease,
)

from .._shared.named_lock import NamedLock
from .._shared.numbers import unportable
from .._shared.privacy import PrivacyGate
from .scopes import FULL, Scope, check_write, merge, safe_scope_name
from .store import LiveStore
from .validate import ContractValidator, pretty

__all__ = ["LiveEngine", "normalise"]

log = logging.getLogger("actorbus.live")


def normalise(data: Any) -> Any:
    """The request data as a plain JSON tree (what a client on the socket would send).

    Raises:
        InvalidRequest: ``data`` holds something JSON cannot carry, is nested too deep,
            or holds a number not every reader can carry (NaN, Infinity, an integer
            outside -2**63 .. 2**64-1): JSON would write NaN as ``null``, a repair.
    """
    try:
        tree = msgspec.json.decode(msgspec.json.encode(data))
    except (msgspec.EncodeError, msgspec.DecodeError, TypeError, ValueError, RecursionError):
        raise InvalidRequest("live-data 'data' is not a JSON document") from None
    # Walked as given: the round trip above has already turned NaN into null.
    why = unportable(data)
    if why is not None:
        raise InvalidRequest(f"live-data 'data' holds {why}, which not every reader can carry")
    return tree


class LiveEngine:
    """Performs live-data writes and reads; blocking, so call it from a worker thread.

    Args:
        store: Where the document lives.
        lock: The generated-data lock.
        scopes: The ownership map.
        validator: The document contract.
        gate: The privacy gate.
        lock_wait_s: How long a write waits for the lock before ``LockBusy``.
    """

    def __init__(
        self,
        store: LiveStore,
        lock: NamedLock,
        scopes: Mapping[str, Scope],
        validator: ContractValidator,
        gate: PrivacyGate,
        lock_wait_s: float,
    ) -> None:
        self.store = store
        self.lock = lock
        self.scopes = scopes
        self.validator = validator
        self.gate = gate
        self.lock_wait_s = lock_wait_s

    def load_base(self) -> tuple[LiveBase, dict[str, Any]]:
        """The valid base: the current document, else the example.

        Raises:
            LiveDataInvalid: Neither is present and valid.
        """
        raw = self.store.read_current()
        if raw is not None:
            try:
                return "current", self.validator.decode_bytes(raw)
            except LiveDataInvalid as exc:
                log.warning("live data: the current document is invalid (%s)", exc.message)
                current = "invalid"
        else:
            current = "missing"
        raw = self.store.read_example()
        if raw is None:
            raise LiveDataInvalid(
                f"no valid base: the current document is {current} and the example is missing"
            )
        try:
            return "example", self.validator.decode_bytes(raw)
        except LiveDataInvalid as exc:
            raise LiveDataInvalid(
                f"no valid base: the current document is {current} and the example is "
                f"invalid ({exc.message})"
            ) from None

    def read(self) -> dict[str, Any]:
        """The current document, or the example when the current one is missing or invalid.

        Raises:
            LiveDataInvalid: Neither is present and valid.
        """
        return self.load_base()[1]

    def write(self, scope: str, data: Any, delete: bool) -> LiveWriteResult:
        """One scoped write, checks in their documented order, under the generated-data lock.

        Args:
            scope: The writing scope.
            data: The request data, shaped like the whole document.
            delete: Remove owned branches that ``data`` omits.

        Returns:
            The write's safe metadata.

        Raises:
            InvalidRequest: Unknown scope or non-JSON data.
            OwnershipViolation: Data outside the scope's branches.
            LiveDataInvalid: Own branch omitted, no valid base, or the merged document
                fails the contract.
            PrivacyViolation: The merged document carries something private.
            LockBusy: The lock stayed held by a live owner for ``lock_wait_s``.
            InternalError: Storage or the lock directory failed (no path in the message).
        """
        try:
            try:
                result = self._write(scope, data, delete)
            except OSError as exc:
                # Named by its error number only: the OSError's text holds a private path.
                detail = os.strerror(exc.errno) if exc.errno else "no detail"
                raise InternalError(
                    f"live-data storage failed ({type(exc).__name__}: {detail}); "
                    "the previous document is unchanged"
                ) from None
        except ActorbusError as exc:
            # The message is safe by construction: paths and rule names, never values.
            # A scope that is not configured is whatever the client sent: not named.
            log.info(
                "live write rejected: scope=%s code=%s %s",
                safe_scope_name(scope) if scope in self.scopes else "(unknown)",
                exc.code,
                exc.message,
            )
            raise
        log.info(
            "live write: scope=%s base=%s bytes=%d branches=%s lock_wait_ms=%.1f lock=%s",
            result.scope,
            result.base,
            result.bytes,
            ",".join(result.branches),
            result.lock_wait_ms,
            result.lock_release,
        )
        return result

    def _write(self, scope: str, data: Any, delete: bool) -> LiveWriteResult:
        data = normalise(data)
        found, branches = check_write(self.scopes, scope, data, delete)
        handle = self.lock.acquire(self.lock_wait_s)
        try:
            if found.name == FULL:
                base_used: LiveBase = "none"
                base = None
            else:
                base_used, base = self.load_base()
            merged = merge(base, found, data)
            self.validator.validate(merged)
            self.gate.check(merged)
            body = pretty(merged)
            self.store.replace(body)
        finally:
            # On every path, failures included; a mismatch is left on disk and reported.
            release: LockRelease = self.lock.release(handle)
        return LiveWriteResult(
            scope=found.name,
            base=base_used,
            bytes=len(body),
            branches=branches,
            lock_wait_ms=round(handle.waited_s * 1000.0, 3),
            lock_release=release,
        )
