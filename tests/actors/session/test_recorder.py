"""The recorder end to end: real bus, real files, real threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.recording import GatedStore, event, logged, recording, tree

from actors import FileSessionStore, session_path
from actors.session.events import ENVELOPE_OVERHEAD  # layering: white-box, the size bound
from contracts import (
    ActorbusError,
    AppendResult,
    EventTooLarge,
    InvalidEvent,
    MissingSessionPath,
    Overloaded,
    RecorderConfig,
    RecorderIOError,
)

pytestmark = pytest.mark.anyio

FIXED = datetime(2026, 11, 22, 9, 15, 2, 137000, tzinfo=UTC)


async def test_an_acknowledged_append_is_already_in_the_file(tmp_path: Path) -> None:
    raw = event(7, extra={"unknown": [1, 2.50, None]})
    async with recording(tmp_path, clock=lambda: FIXED) as (_, recorder):
        assert await recorder.open_session("u1", "s1") is True
        result = await recorder.append(raw)
        assert result == AppendResult(record_id="r7", recorded_at="2026-11-22T09:15:02.137Z")
        expected = b'{"recorded_at":"2026-11-22T09:15:02.137Z","event":' + raw + b"}\n"
        assert session_path(tmp_path, "u1", "s1").read_bytes() == expected


async def test_recorded_at_is_utc_with_milliseconds_by_default(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        before = datetime.now(UTC).replace(microsecond=0)
        result = await recorder.append(event())
    stamped = datetime.strptime(result.recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert result.recorded_at.endswith("Z") and len(result.recorded_at) == 24
    assert before <= stamped
    assert logged(tmp_path)[0]["recorded_at"] == result.recorded_at


async def test_opening_an_open_session_reports_it_existed(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        assert await recorder.open_session("u1", "s1") is True
        assert await recorder.open_session("u1", "s1") is False
        with pytest.raises(InvalidEvent):
            await recorder.open_session("..", "s1")


async def test_mapping_events_are_recorded_as_json(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(
            {"record_id": "m1", "user_id": "u1", "session_id": "s1", "source": "mp", "n": [1]}
        )
    assert logged(tmp_path)[0]["event"] == {
        "record_id": "m1",
        "user_id": "u1",
        "session_id": "s1",
        "source": "mp",
        "n": [1],
    }


async def test_near_limit_event_is_accepted_and_over_limit_rejected_with_file_unchanged(
    tmp_path: Path,
) -> None:
    limit = 2048
    pad = limit - ENVELOPE_OVERHEAD - len(event(0, pad=""))
    async with recording(tmp_path, RecorderConfig(max_event_bytes=limit)) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0, pad="x" * pad))
        log = session_path(tmp_path, "u1", "s1")
        assert len(log.read_bytes()) == limit  # exactly one line of exactly the limit
        before = log.read_bytes()
        with pytest.raises(EventTooLarge):
            await recorder.append(event(1, pad="x" * (pad + 1)))
        results = await recorder.append_batch([event(2, pad="x" * (pad + 1))])
        assert isinstance(results[0], EventTooLarge)
        assert log.read_bytes() == before


async def test_missing_session_directory_fails_and_creates_nothing(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        with pytest.raises(MissingSessionPath) as info:
            await recorder.append(event())
        assert info.value.status == 409
        assert isinstance((await recorder.append_batch([event()]))[0], MissingSessionPath)
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    ("user", "session"),
    [("..", "s1"), ("u1", ".."), ("a/b", "s1"), ("u1", "../../x"), ("", "s1"), ("u1", "x" * 129)],
)
async def test_unsafe_ids_are_rejected_and_nothing_is_written(
    tmp_path: Path, user: str, session: str
) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        before = tree(tmp_path)
        with pytest.raises(InvalidEvent):
            await recorder.append(event(user=user, session=session))
        with pytest.raises(InvalidEvent):
            recorder.try_append(event(user=user, session=session))
        assert isinstance(
            (await recorder.append_batch([event(user=user, session=session)]))[0], InvalidEvent
        )
        with pytest.raises(InvalidEvent):
            recorder.replay(user, session)
    assert tree(tmp_path) == before


async def test_batch_results_are_in_order_and_an_invalid_event_fails_alone(
    tmp_path: Path,
) -> None:
    async with recording(tmp_path, RecorderConfig(max_event_bytes=1024)) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.open_session("u2", "s9")
        events: list[bytes | dict[str, Any]] = [
            event(0),
            b"{not json",
            event(1, user="u2", session="s9"),
            event(2, pad="x" * 2000),
            event(3),
            event(4, user="u1", session="closed-but-same-dir"),
            {"record_id": "r5", "user_id": "u2", "session_id": "s9", "source": "m"},
            event(6, user="nobody"),
        ]
        results = await recorder.append_batch(events)
        assert [type(r).__name__ for r in results] == [
            "AppendResult",
            "InvalidEvent",
            "AppendResult",
            "EventTooLarge",
            "AppendResult",
            "MissingSessionPath",
            "AppendResult",
            "MissingSessionPath",
        ]
        assert [r.record_id for r in results if isinstance(r, AppendResult)] == [
            "r0",
            "r1",
            "r3",
            "r5",
        ]
        assert await recorder.append_batch([]) == []
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r3"]
    assert [e["event"]["record_id"] for e in logged(tmp_path, "u2", "s9")] == ["r1", "r5"]
    # Opened is per session: a session never opened gets no log beside an open one.
    assert not session_path(tmp_path, "u1", "closed-but-same-dir").exists()


async def test_try_append_fails_fast_when_the_mailbox_is_full(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    async with recording(tmp_path, store=store, mailbox_size=1) as (_, recorder):
        await recorder.open_session("u1", "s1")
        async with anyio.create_task_group() as tg:
            results: list[AppendResult] = []

            async def append(seq: int) -> None:
                results.append(await recorder.append(event(seq)))

            tg.start_soon(append, 0)
            await anyio.to_thread.run_sync(store.entered.wait)  # the writer is busy writing
            queued = recorder.try_append(event(1))  # takes the one mailbox slot
            with pytest.raises(Overloaded) as info:
                recorder.try_append(event(2))
            assert info.value.status == 503
            store.gate.set()
            results.append(await queued)
        assert sorted(r.record_id for r in results) == ["r0", "r1"]
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r1"]


async def test_try_append_many_queues_one_message_per_session_and_fails_alone(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path)
    async with recording(tmp_path, store=store, mailbox_size=1) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.open_session("u2", "s9")
        first = recorder.try_append(event(0))  # the writer takes it and waits at the gate
        await anyio.to_thread.run_sync(store.entered.wait)
        outcomes = recorder.try_append_many(
            [
                event(1),
                b"{not json",
                event(2, user="u2", session="s9"),
                event(3),  # behind r1 in the same message: a mailbox of one takes both
            ]
        )
        assert type(outcomes[1]).__name__ == "InvalidEvent"
        parts = [o for o in outcomes if isinstance(o, tuple)]
        assert len(parts) == 3 and parts[0][0] is parts[2][0] is not parts[1][0]
        # The session's mailbox is full now: the next run fails with Overloaded, whole.
        refused = recorder.try_append_many([event(4), event(5)])
        assert [type(o).__name__ for o in refused] == ["Overloaded", "Overloaded"]
        store.gate.set()
        assert (await first).record_id == "r0"
        replies = [(await fut)[index] for fut, index in parts]
        assert [r.record_id for r in replies] == ["r1", "r2", "r3"]
        assert recorder.try_append_many([]) == []
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r1", "r3"]
    assert [e["event"]["record_id"] for e in logged(tmp_path, "u2", "s9")] == ["r2"]


async def test_fsync_mode_syncs_before_acknowledging(tmp_path: Path) -> None:
    synced = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def fake_fsync(fd: int) -> None:
        calls.append(os.fstat(fd).st_size)
        synced.set()
        assert release.wait(10)
        os.fsync(fd)

    store = FileSessionStore(tmp_path, fsync=fake_fsync)
    config = RecorderConfig(durability="fsync")
    async with recording(tmp_path, config, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        async with anyio.create_task_group() as tg:
            done: list[AppendResult] = []

            async def append() -> None:
                done.append(await recorder.append(event()))

            tg.start_soon(append)
            await anyio.to_thread.run_sync(synced.wait)
            await anyio.sleep(0.01)
            assert done == []  # written, fsync in progress: not acknowledged yet
            release.set()
        assert len(done) == 1
    assert calls == [len(session_path(tmp_path, "u1", "s1").read_bytes())]


async def test_durability_none_never_fsyncs(tmp_path: Path) -> None:
    calls: list[int] = []
    store = FileSessionStore(tmp_path, fsync=calls.append)
    async with recording(tmp_path, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event())
        await recorder.append_batch([event(1), event(2)])
    assert calls == []


async def test_short_write_leaves_no_partial_line_and_the_writer_keeps_serving(
    tmp_path: Path,
) -> None:
    short = threading.Event()

    def fake_write(fd: int, data: bytes) -> int:
        """A fake ``os.write`` that, when told to, stops half way (a full disk)."""
        if short.is_set():
            return os.write(fd, data[: len(data) // 2])
        return os.write(fd, data)

    store = FileSessionStore(tmp_path, write=fake_write)
    async with recording(tmp_path, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0))
        short.set()
        with pytest.raises(RecorderIOError) as info:
            await recorder.append(event(1))
        assert info.value.status == 500
        failed = await recorder.append_batch([event(2), event(3)])
        assert all(isinstance(r, RecorderIOError) for r in failed)
        short.clear()
        await recorder.append(event(4))
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r4"]


async def test_a_lock_held_by_another_process_does_not_freeze_the_loop(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "locked")
        await recorder.open_session("u1", "free")
        held = session_path(tmp_path, "u1", "locked")
        code = (
            "import fcntl, os, sys\n"
            f"fd = os.open({str(held)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        results: list[AppendResult] = []
        try:
            assert holder.stdout is not None
            line = await anyio.to_thread.run_sync(holder.stdout.readline)
            assert line.strip() == "locked"
            async with anyio.create_task_group() as tg:

                async def append_locked() -> None:
                    results.append(await recorder.append(event(1, session="locked")))

                tg.start_soon(append_locked)
                await anyio.sleep(0.01)
                other = await recorder.append(event(2, session="free"))
                assert other.record_id == "r2" and results == []
                holder.stdin.close()  # type: ignore[union-attr]
        finally:
            await anyio.to_thread.run_sync(holder.wait, 10)
    assert [r.record_id for r in results] == ["r1"]
    assert [e["event"]["record_id"] for e in logged(tmp_path, "u1", "locked")] == ["r1"]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    """A 64 KiB tmpfs mounted for the test (a real disk that really fills up)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("mounting a small tmpfs is not permitted here, so no real disk can fill up")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_fails_the_batch_leaves_no_partial_line_and_recovers(
    small_tmpfs: Path,
) -> None:
    acknowledged: list[str] = []
    failures: list[ActorbusError] = []
    async with recording(small_tmpfs) as (_, recorder):
        await recorder.open_session("u1", "s1")
        seq = 0
        while not failures and seq < 10_000:
            batch = [event(seq + i, pad="x" * 200) for i in range(7)]
            seq += len(batch)
            for result in await recorder.append_batch(batch):
                if isinstance(result, AppendResult):
                    acknowledged.append(result.record_id)
                else:
                    failures.append(result)
        assert failures and all(isinstance(f, RecorderIOError) for f in failures)
        assert [e["event"]["record_id"] for e in logged(small_tmpfs)] == acknowledged
        with pytest.raises(RecorderIOError):
            await recorder.append(event(seq, pad="x" * 4000))
        assert [e["event"]["record_id"] for e in logged(small_tmpfs)] == acknowledged

        await anyio.to_thread.run_sync(
            lambda: subprocess.run(["mount", "-o", "remount,size=1m", str(small_tmpfs)], check=True)
        )
        result = await recorder.append(event(seq + 1))
        assert result.record_id == f"r{seq + 1}"
    recorded = [e["event"]["record_id"] for e in logged(small_tmpfs)]
    assert recorded == [*acknowledged, result.record_id]


async def test_every_disk_access_happens_off_the_event_loop(tmp_path: Path) -> None:
    loop_thread = threading.get_ident()
    calls: list[str] = []

    class OffLoopStore(FileSessionStore):
        """The real store, failing any call made on the event loop's thread."""

        def _off_loop(self, name: str) -> None:
            calls.append(name)
            assert threading.get_ident() != loop_thread, f"{name} ran on the event loop"

        def open_session(self, user_id: str, session_id: str) -> bool:
            self._off_loop("open_session")
            return super().open_session(user_id, session_id)

        def append(self, *args: Any, **kwargs: Any) -> Any:
            self._off_loop("append")
            return super().append(*args, **kwargs)

        def read(self, *args: Any) -> bytes:
            self._off_loop("read")
            return super().read(*args)

        def size(self, *args: Any) -> int:
            self._off_loop("size")
            return super().size(*args)

        def window(self, *args: Any) -> Any:
            self._off_loop("window")
            return super().window(*args)

    async with recording(tmp_path, store=OffLoopStore(tmp_path)) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0))
        await recorder.append_batch([event(1), event(2)])
        assert len([line async for line in recorder.replay("u1", "s1")]) == 3
        with anyio.move_on_after(0.1):  # a follower that sees nothing new, then stops
            async for _ in recorder.follow("u1", "s1", from_start=False, poll_s=0.01):
                pass
    assert {"open_session", "append", "window"} <= set(calls)


async def test_appends_made_behind_an_open_wait_for_it_and_keep_their_order(
    tmp_path: Path,
) -> None:
    async with recording(tmp_path) as (_, recorder):
        opened = recorder.open_session("u1", "s1")  # not awaited: the directory is not there
        first = recorder.try_append(event(0))
        many = recorder.try_append_many([event(1), event(2)])
        batch = recorder.append_batch([event(3)])
        last = recorder.append(event(4))
        assert await opened is True
        assert (await first).record_id == "r0"
        assert [(await fut)[index].record_id for fut, index in many] == ["r1", "r2"]  # type: ignore[misc]
        assert [r.record_id for r in await batch] == ["r3"]  # type: ignore[union-attr]
        assert (await last).record_id == "r4"
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r1", "r2", "r3", "r4"]


async def test_a_batch_is_queued_in_the_call_so_a_later_append_follows_it(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path)
    async with recording(tmp_path, store=store) as (_, recorder):
        await recorder.open_session("u1", "s1")
        head = recorder.try_append(event(0))  # the writer takes it and waits at the gate
        await anyio.to_thread.run_sync(store.entered.wait)
        batch = recorder.append_batch([event(1), event(2)])  # not awaited yet
        after = recorder.try_append(event(3))
        store.gate.set()
        await head
        assert [r.record_id for r in await batch] == ["r1", "r2"]  # type: ignore[union-attr]
        await after
    assert [e["event"]["record_id"] for e in logged(tmp_path)] == ["r0", "r1", "r2", "r3"]
