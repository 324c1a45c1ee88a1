"""The session writer: group commit, chunk bounds, publishing, passivation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.recording import GatedStore, event, logged, recording

from actors import FileSessionStore, SessionWriter, session_path, session_topic
from actors.session.events import ENVELOPE_OVERHEAD
from contracts import (
    AppendResult,
    RecorderConfig,
)

pytestmark = pytest.mark.anyio


async def test_each_recorded_envelope_is_published_on_the_session_topic(tmp_path: Path) -> None:
    async with recording(tmp_path) as (bus, recorder):
        await recorder.open_session("u1", "s1")
        subscription = bus.topic(session_topic("u1", "s1")).subscribe()
        await recorder.append(event(1))
        results = await recorder.append_batch([event(2), event(3)])
        assert all(isinstance(r, AppendResult) for r in results)
        published = [subscription.get_nowait() for _ in range(3)]
    on_disk = session_path(tmp_path, "u1", "s1").read_bytes().split(b"\n")[:-1]
    assert published == on_disk


async def test_a_batch_over_the_bounds_is_cut_into_several_writes(tmp_path: Path) -> None:
    sizes: list[int] = []

    def counting_write(fd: int, data: bytes) -> int:
        sizes.append(data.count(b"\n"))
        return os.write(fd, data)

    store = FileSessionStore(tmp_path, write=counting_write)
    config = RecorderConfig(batch_max_events=10, batch_max_bytes=1 << 20)
    async with recording(tmp_path, config, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        results = await recorder.append_batch([event(i) for i in range(35)])
        assert all(isinstance(r, AppendResult) for r in results)
    assert sizes == [10, 10, 10, 5]
    assert [e["event"]["seq"] for e in logged(tmp_path)] == list(range(35))


async def test_concurrent_producers_keep_their_own_order(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")

        async def producer(name: str) -> None:
            for seq in range(200):
                await recorder.append(event(seq, producer=name))

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(producer, f"p{n}")
    seen: dict[str, list[int]] = {}
    for envelope in logged(tmp_path):
        seen.setdefault(envelope["event"]["producer"], []).append(envelope["event"]["seq"])
    assert seen == {f"p{n}": list(range(200)) for n in range(8)}


async def test_passivating_writers_mid_stream_loses_and_reorders_nothing(tmp_path: Path) -> None:
    async with recording(tmp_path, idle_s=0.005) as (bus, recorder):
        for n in range(3):
            await recorder.open_session("u1", f"s{n}")

        async def producer(session: str) -> None:
            for seq in range(60):
                await recorder.append(event(seq, session=session))
                if seq % 10 == 9:
                    await anyio.sleep(0.03)  # idle long enough to be passivated

        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(producer, f"s{n}")
        stats = next(a for a in bus.statistics().actors if a.name == SessionWriter.__name__)
        assert stats.passivations >= 3
        assert stats.activations > 3
    for n in range(3):
        assert [e["event"]["seq"] for e in logged(tmp_path, "u1", f"s{n}")] == list(range(60))


async def test_a_batch_is_cut_by_bytes_too(tmp_path: Path) -> None:
    sizes: list[int] = []

    def counting_write(fd: int, data: bytes) -> int:
        sizes.append(len(data))
        return os.write(fd, data)

    line = len(event(0, pad="x" * 100)) + ENVELOPE_OVERHEAD
    store = FileSessionStore(tmp_path, write=counting_write)
    config = RecorderConfig(batch_max_events=1000, batch_max_bytes=line * 3)
    async with recording(tmp_path, config, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append_batch([event(i, pad="x" * 100) for i in range(7)])
    assert sizes == [line * 3, line * 3, line]
    assert [e["event"]["seq"] for e in logged(tmp_path)] == list(range(7))


async def test_appends_and_batches_queued_together_share_one_write_and_keep_order(
    tmp_path: Path,
) -> None:
    writes: list[int] = []

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(data.count(b"\n"))
        return os.write(fd, data)

    store = GatedStore(tmp_path, write=counting_write)
    async with recording(tmp_path, store=store) as (bus, recorder):
        await recorder.open_session("u1", "s1")

        def depth() -> int:
            stats = bus.statistics().actors
            return next(a.mailbox_depth for a in stats if a.name == SessionWriter.__name__)

        replies: dict[int, Any] = {}
        async with anyio.create_task_group() as tg:

            async def one(seq: int) -> None:
                replies[seq] = await recorder.append(event(seq))

            async def many(first: int, *rest: bytes) -> None:
                replies[first] = await recorder.append_batch([event(first), *rest])

            tg.start_soon(one, 0)
            await anyio.to_thread.run_sync(store.entered.wait)  # the first write waits
            queued = [
                (one, (1,)),
                (many, (2, b"{}", event(3))),
                (one, (4,)),
                (many, (5, event(6))),
            ]
            for expected, (start, args) in enumerate(queued, 1):
                tg.start_soon(start, *args)
                with anyio.fail_after(5):
                    while depth() < expected:
                        await anyio.sleep(0.001)
            store.gate.set()
    assert writes == [1, 6]  # everything queued meanwhile went out in one write()
    assert [r.record_id for r in (replies[0], replies[1], replies[4])] == ["r0", "r1", "r4"]
    kinds = [type(r).__name__ for r in replies[2]]
    assert kinds == ["AppendResult", "InvalidEvent", "AppendResult"]
    assert [r.record_id for r in replies[5]] == ["r5", "r6"]
    assert [e["event"]["seq"] for e in logged(tmp_path)] == list(range(7))
