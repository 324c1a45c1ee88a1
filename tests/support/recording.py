"""What the recording tests share: events, a running recorder, reading the log."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actors import FileSessionStore, Recorder, session_path
from bus import Bus, open_bus
from contracts import ActorbusError, BusConfig, RecorderConfig


def event(seq: int = 0, *, user: str = "u1", session: str = "s1", **extra: Any) -> bytes:
    body = {
        "record_id": f"r{seq}",
        "user_id": user,
        "session_id": session,
        "source": "test",
        "seq": seq,
        "timestamp": "2026-11-22T10:15:02.1370+01:00",
        **extra,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@asynccontextmanager
async def recording(
    root: Path, config: RecorderConfig | None = None, **kwargs: Any
) -> AsyncIterator[tuple[Bus, Recorder]]:
    async with open_bus(BusConfig(shutdown_deadline_s=5)) as bus:
        yield bus, Recorder(bus, root, config or RecorderConfig(), **kwargs)


def logged(root: Path, user: str = "u1", session: str = "s1") -> list[dict[str, Any]]:
    data = session_path(root, user, session).read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


class GatedStore(FileSessionStore):
    """The real store, whose appends wait at a gate the test opens (a fake slow disk)."""

    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def append(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        wait: bool,
    ) -> tuple[int, ActorbusError | None]:
        self.entered.set()
        assert self.gate.wait(10)
        return super().append(user_id, session_id, chunks, durable=durable, wait=wait)
