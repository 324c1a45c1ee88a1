"""Reading session logs back: replay, and follow as the log grows."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from support.recording import event, recording

from contracts import (
    MissingSessionPath,
)

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
