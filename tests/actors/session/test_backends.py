"""One contract, two backends: files under a root and NATS JetStream (a real nats-server).

Every test here runs against both; what differs between them is tested beside
(``test_jetstream.py``). Two recorders on two buses and two roots, sharing one
JetStream, stand for two hosts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.recording import event

from actors import JetStream, JetStreamSessions, Recorder
from bus import open_bus
from contracts import (
    BusConfig,
    InvalidEvent,
    JetStreamConfig,
    MissingSessionPath,
    RecorderConfig,
)

pytestmark = pytest.mark.anyio

Open = Callable[[Path], Any]


@pytest.fixture(params=["files", "jetstream"])
def open_recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Open:
    """Opens a recorder (one "host") on the backend under test."""
    server = request.getfixturevalue("nats_server") if request.param == "jetstream" else None

    @asynccontextmanager
    async def opened(root: Path, config: RecorderConfig | None = None) -> AsyncIterator[Recorder]:
        async with AsyncExitStack() as stack:
            bus = await stack.enter_async_context(open_bus(BusConfig(shutdown_deadline_s=5)))
            backend = None
            if server is not None:
                js = await JetStream.connect(JetStreamConfig(servers=[server.url], partitions=3))
                stack.push_async_callback(js.aclose)
                backend = await JetStreamSessions.open(js)
                stack.push_async_callback(backend.aclose)
            yield Recorder(bus, root, config or RecorderConfig(), backend=backend)

    opened.shared = server is not None  # type: ignore[attr-defined]
    return opened


async def lines(recorder: Recorder, user: str = "u1", session: str = "s1") -> list[dict[str, Any]]:
    return [json.loads(line) async for line in recorder.replay(user, session)]


async def test_open_twice_creates_once(open_recorder: Open, tmp_path: Path) -> None:
    async with open_recorder(tmp_path) as recorder:
        assert await recorder.open_session("u1", "s1") is True
        assert await recorder.open_session("u1", "s1") is False
        assert await recorder.open_session("u1", "s.2") is True
        assert await lines(recorder) == []


async def test_an_append_to_a_session_never_opened_is_409_and_creates_nothing(
    open_recorder: Open, tmp_path: Path
) -> None:
    async with open_recorder(tmp_path) as recorder:
        await recorder.open_session("u1", "s1")
        with pytest.raises(MissingSessionPath):
            await recorder.append(event(1, session="s1-typo"))
        with pytest.raises(MissingSessionPath):
            [_ async for _ in recorder.replay("u1", "s1-typo")]
        # The typo did not start a log: opening it now creates it, empty.
        assert await recorder.open_session("u1", "s1-typo") is True
        assert await lines(recorder, session="s1-typo") == []


async def test_replay_equals_what_was_acknowledged_in_order(
    open_recorder: Open, tmp_path: Path
) -> None:
    async with open_recorder(tmp_path) as recorder:
        for s in ("s1", "s2"):
            await recorder.open_session("u1", s)
        # Many in flight at once, two sessions interleaved: each session keeps its order.
        acks = [recorder.append(event(i, session=f"s{1 + i % 2}")) for i in range(600)]
        results = [await ack for ack in acks]
        batch = await recorder.append_batch([event(600 + i, session="s1") for i in range(300)])
        for s, first in (("s1", 0), ("s2", 1)):
            got = await lines(recorder, session=s)
            ids = [line["event"]["record_id"] for line in got]
            expected = [f"r{i}" for i in range(first, 600, 2)]
            if s == "s1":
                expected += [f"r{600 + i}" for i in range(300)]
            assert ids == expected
        by_id = {r.record_id: r.recorded_at for r in [*results, *batch]}  # type: ignore[union-attr]
        for line in await lines(recorder, session="s1"):
            assert line["recorded_at"] == by_id[line["event"]["record_id"]]


async def test_an_invalid_event_fails_alone(open_recorder: Open, tmp_path: Path) -> None:
    async with open_recorder(tmp_path) as recorder:
        await recorder.open_session("u1", "s1")
        results = await recorder.append_batch([event(1), b'{"record_id": "x"}', event(2)])
        assert isinstance(results[1], InvalidEvent)
        assert [line["event"]["seq"] for line in await lines(recorder)] == [1, 2]


async def test_follow_sees_new_lines_from_start_and_from_the_end(
    open_recorder: Open, tmp_path: Path
) -> None:
    async with open_recorder(tmp_path) as recorder:
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0))
        seen_all: list[int] = []
        seen_new: list[int] = []

        async def follow(into: list[int], from_start: bool) -> None:
            async for line in recorder.follow("u1", "s1", from_start=from_start, poll_s=0.05):
                into.append(json.loads(line)["event"]["seq"])
                if len(into) >= (4 if from_start else 3):
                    return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, seen_all, True)
                tg.start_soon(follow, seen_new, False)
                await anyio.sleep(0.5)  # both followers are in place
                for i in (1, 2, 3):
                    await recorder.append(event(i))
        assert seen_all == [0, 1, 2, 3]
        assert seen_new == [1, 2, 3]
