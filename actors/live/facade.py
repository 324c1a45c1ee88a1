"""The live-data actor, the single producer gate of ``<root>/data/live-data.json``.

Writers inside one service queue in the actor's mailbox; writers in other
processes are kept out by the generated-data lock. The blocking part of each write
runs in a worker thread, so the event loop never waits on disk or on the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

from bus import Actor, Bus
from contracts import LiveDataConfig, LiveWriteResult

from .._shared.named_lock import NamedLock
from .._shared.privacy import PrivacyGate
from .engine import LiveEngine
from .scopes import build_scopes
from .store import FileLiveStore, LiveStore
from .validate import ContractValidator

__all__ = ["LIVE_DATA_LOCK", "LiveData", "LiveDataActor", "WriteBranch"]

#: The generated-data lock's name, distinct from any per-job run lock.
LIVE_DATA_LOCK = "generated-live-data"


class WriteBranch(msgspec.Struct, frozen=True):
    """Command: write ``data`` as ``scope`` (``delete``: remove omitted owned branches)."""

    scope: str
    data: Any
    delete: bool = False


class LiveDataActor(Actor):
    """Sequences live-data writes; each runs whole in a worker thread.

    Args:
        engine: The write pipeline.
    """

    def __init__(self, engine: LiveEngine) -> None:
        self._engine = engine

    async def receive(self, message: Any) -> Any:
        """Handle a :class:`WriteBranch`; its result or typed error goes to the asker."""
        match message:
            case WriteBranch(scope=scope, data=data, delete=delete):
                return await anyio.to_thread.run_sync(self._engine.write, scope, data, delete)
            case _:
                raise TypeError(f"live-data actor got a {type(message).__name__}")


class LiveData:
    """The service facade over the live-data actor (spawned as ``live-data``).

    Args:
        bus: The running actor system.
        root: The service root; the document is ``<root>/data/live-data.json`` and
            the lock lives under ``<root>/locks/``.
        config: ``[live_data]``: lock wait, stale age and extra scopes.
        contract: The document's msgspec type (default :class:`~contracts.LiveDocument`).
        clock: Wall-clock seconds since the epoch, for lock records and ages.
        hostname: This host's name, as written in lock records.
        store: Where the document lives (default: files under ``<root>/data``).

    Raises:
        InvalidRequest: The scopes overlap or are malformed (a start-up error).
    """

    def __init__(
        self,
        bus: Bus,
        root: Path,
        config: LiveDataConfig,
        contract: type | None = None,
        clock: Callable[[], float] | None = None,
        hostname: str | None = None,
        store: LiveStore | None = None,
    ) -> None:
        root = Path(root)
        gate = PrivacyGate([root])
        self.engine = LiveEngine(
            store=store or FileLiveStore(root / "data"),
            lock=NamedLock(
                root / "locks",
                LIVE_DATA_LOCK,
                stale_s=config.lock_stale_s,
                clock=clock,
                hostname=hostname,
            ),
            scopes=build_scopes(config.scopes),
            validator=ContractValidator(contract, gate.redact),
            gate=gate,
            lock_wait_s=config.lock_wait_s,
        )
        engine = self.engine
        self.ref = bus.spawn(lambda: LiveDataActor(engine), name="live-data")

    async def write(
        self, scope: str, data: dict[str, Any], delete: bool = False
    ) -> LiveWriteResult:
        """Write the branches ``scope`` owns; the checks and their order are in ``docs/runbook.md``.

        Args:
            scope: ``full``, ``host-local``, ``trend-finder`` or a configured scope.
            data: Shaped like the whole document, holding only the scope's branches.
            delete: Remove owned branches that ``data`` omits.

        Returns:
            Safe metadata: scope, base used, bytes, branches, lock wait.

        Raises:
            InvalidRequest: Unknown scope or non-JSON data.
            OwnershipViolation: Data outside the scope's branches.
            LiveDataInvalid: Own branch omitted, no valid base, or contract failure.
            PrivacyViolation: The merged document carries something private.
            LockBusy: The lock stayed held by a live owner past ``lock_wait_s``.
            InternalError: Storage or the lock directory failed; nothing was written.
        """
        result: LiveWriteResult = await self.ref.ask(WriteBranch(scope, data, delete))
        return result

    async def read(self) -> dict[str, Any]:
        """The current document, or the example fallback when it is missing or invalid.

        Raises:
            LiveDataInvalid: Neither is present and valid.
        """
        return await anyio.to_thread.run_sync(self.engine.read)
