"""Reading session logs back: replay, and follow as the log grows."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from support.recording import event, recording

from actors import FileSessionStore, Recorder, session_path
from contracts import AppendResult, MissingSessionPath, RecorderIOError

pytestmark = pytest.mark.anyio


async def test_replay_yields_every_line_in_order(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        assert [line async for line in recorder.replay("u1", "s1")] == []
        await recorder.append_batch([event(i) for i in range(100)])
        lines = [line async for line in recorder.replay("u1", "s1")]
        with pytest.raises(MissingSessionPath):
            [line async for line in recorder.replay("nobody", "s1")]
    assert [json.loads(line)["event"]["seq"] for line in lines] == list(range(100))
    assert all(not line.endswith(b"\n") for line in lines)


async def test_follow_replays_then_yields_new_lines_as_they_land(tmp_path: Path) -> None:
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0))
        seen: list[int] = []
        tail: list[int] = []
        done = anyio.Event()

        async def follow(into: list[int], from_start: bool) -> None:
            async for line in recorder.follow("u1", "s1", from_start=from_start, poll_s=10):
                into.append(json.loads(line)["event"]["seq"])
                if seen[-1:] == [4] and tail[-1:] == [4]:
                    done.set()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, seen, True)
                tg.start_soon(follow, tail, False)
                marker = 100
                while not tail:  # until the tail follower is surely past its start
                    await recorder.append(event(marker))
                    marker += 1
                    await anyio.sleep(0.01)
                for seq in range(1, 5):
                    await recorder.append(event(seq))
                await done.wait()
                tg.cancel_scope.cancel()
        logged_seqs = [
            json.loads(line)["event"]["seq"] async for line in recorder.replay("u1", "s1")
        ]
    assert seen == logged_seqs  # the replay, then every new line, once, in order
    assert 0 not in tail and tail[-4:] == [1, 2, 3, 4]
    assert tail == logged_seqs[len(logged_seqs) - len(tail) :]  # a contiguous suffix


async def test_follow_sees_lines_appended_by_another_process(tmp_path: Path) -> None:
    producer = Path(__file__).resolve().parents[2] / "support" / "recording_producer.py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), *sys.path]))
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        seen: list[str] = []
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def follow() -> None:
                    async for line in recorder.follow("u1", "s1", poll_s=0.02):
                        seen.append(json.loads(line)["event"]["record_id"])
                        if len(seen) == 40:
                            tg.cancel_scope.cancel()

                tg.start_soon(follow)
                args = [str(tmp_path), "u1", "s1", "other", "20", "2"]
                done = await anyio.run_process(
                    [sys.executable, str(producer), *args], env=env, check=False
                )
                assert done.returncode == 0, done.stderr
    assert sorted(seen) == sorted(
        [f"other-0-{i:06d}" for i in range(20)] + [f"other-1-{i:06d}" for i in range(20)]
    )


async def test_follow_ends_when_the_bus_closes(tmp_path: Path) -> None:
    lines: list[bytes] = []
    with anyio.fail_after(20):  # a follower that outlived the bus would hang here
        async with anyio.create_task_group() as tg, recording(tmp_path) as (_, recorder):
            await recorder.open_session("u1", "s1")
            await recorder.append(event(0))

            async def follow() -> None:
                async for line in recorder.follow("u1", "s1", poll_s=10):
                    lines.append(line)

            tg.start_soon(follow)
            with anyio.fail_after(10):
                while not lines:  # the follower is running and caught up
                    await anyio.sleep(0.005)
    # Leaving the bus closed its topics: the follower ended instead of hanging.
    assert len(lines) == 1


def rotate_by_copy_and_truncate(log: Path, rotated: Path) -> None:
    """The operator's rotation ``docs/recording.md`` describes: copy, truncate, under the flock."""
    fd = os.open(log, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rotated.write_bytes(log.read_bytes())
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def append_elsewhere(log: Path, lines: list[bytes]) -> None:
    """Append as another process would (under the log's flock), publishing nothing here."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"".join(lines))
    finally:
        os.close(fd)


def envelope(line: bytes) -> bytes:
    return b'{"recorded_at":"2026-01-01T00:00:00.000Z","event":' + line + b"}\n"


async def follow_until_it_ends(
    recorder: Recorder,
    caught_up: int,
    rotate: Callable[[], Awaitable[None]],
    poll_s: float = 10,
) -> tuple[list[bytes], BaseException | None]:
    """Follow u1/s1; once ``caught_up`` lines arrived run ``rotate``; return lines and the end."""
    lines: list[bytes] = []
    ended: list[BaseException | None] = []
    reached = anyio.Event()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                try:
                    async for line in recorder.follow("u1", "s1", poll_s=poll_s):
                        lines.append(line)
                        if len(lines) == caught_up:
                            reached.set()
                except (RecorderIOError, MissingSessionPath) as exc:
                    ended.append(exc)
                else:
                    ended.append(None)

            tg.start_soon(follow)
            await reached.wait()
            await rotate()
    return lines, ended[0]


async def test_a_copy_and_truncate_rotation_ends_a_follower_without_a_fragment(
    tmp_path: Path,
) -> None:
    log = session_path(tmp_path, "u1", "s1")
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append_batch([event(i) for i in range(5)])

        async def rotate() -> None:
            rotate_by_copy_and_truncate(log, tmp_path / "s1.jsonl.1")
            # Twelve longer lines land before the follower reads again: the log
            # grows back past the follower's offset, so a size check alone misses it.
            results = await recorder.append_batch([event(100 + i, pad="x" * 40) for i in range(12)])
            assert all(isinstance(r, AppendResult) for r in results)

        lines, end = await follow_until_it_ends(recorder, 5, rotate)
    assert isinstance(end, RecorderIOError) and "truncated" in end.message
    assert str(tmp_path) not in end.message
    # Only whole envelopes were yielded, and none of them from the middle of a line.
    assert [json.loads(line)["event"]["seq"] for line in lines] == list(range(5))
    assert os.path.getsize(log) > sum(len(line) + 1 for line in lines)


async def test_a_rotation_by_rename_and_reopen_ends_a_follower(tmp_path: Path) -> None:
    log = session_path(tmp_path, "u1", "s1")
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append_batch([event(i) for i in range(3)])

        async def rotate() -> None:
            # The rotation procedure renames and recreates in one step (no await
            # between), as a rotation tool does: the follower sees a new file.
            log.rename(tmp_path / "s1.jsonl.1")
            assert FileSessionStore(tmp_path).open_session("u1", "s1") is True
            await recorder.append_batch([event(10 + i) for i in range(6)])

        lines, end = await follow_until_it_ends(recorder, 3, rotate)
    assert isinstance(end, RecorderIOError) and "replaced" in end.message
    assert [json.loads(line)["event"]["seq"] for line in lines] == [0, 1, 2]


async def test_a_log_removed_under_a_follower_ends_it_with_missing_session(tmp_path: Path) -> None:
    log = session_path(tmp_path, "u1", "s1")
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        await recorder.append(event(0))

        async def rotate() -> None:
            log.rename(tmp_path / "s1.jsonl.1")

        lines, end = await follow_until_it_ends(recorder, 1, rotate, poll_s=0.02)
    assert isinstance(end, MissingSessionPath) and "removed" in end.message
    assert len(lines) == 1


async def test_a_follower_from_the_end_yields_only_whole_new_lines(tmp_path: Path) -> None:
    log = session_path(tmp_path, "u1", "s1")
    async with recording(tmp_path) as (_, recorder):
        await recorder.open_session("u1", "s1")
        # Longer than the tail a follower looks back at, so it starts mid-log.
        await recorder.append_batch([event(i, pad="y" * 300) for i in range(40)])
        seen: list[int] = []
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def follow() -> None:
                    async for line in recorder.follow("u1", "s1", from_start=False, poll_s=0.02):
                        seen.append(json.loads(line)["event"]["seq"])
                        if seen[-1] == 99:
                            tg.cancel_scope.cancel()

                tg.start_soon(follow)
                marker = 50
                while not seen:
                    append_elsewhere(log, [envelope(event(marker))])
                    marker += 1
                    await anyio.sleep(0.01)
                append_elsewhere(log, [envelope(event(99))])
    assert seen[-1] == 99 and all(seq >= 50 for seq in seen)
