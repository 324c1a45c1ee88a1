"""A producer process for the recording tests: appends through the real recorder.

Usage::

    python tests/support/recording_producer.py ROOT USER SESSION NAME COUNT TASKS [uvloop|asyncio]

Runs ``TASKS`` concurrent producers named ``NAME-<task>``; each appends ``COUNT``
events with ``seq`` 0..COUNT-1 in order, the last task through ``append_batch``
(50 events per call), the others one acknowledged append at a time. Exits 0 when
every event was acknowledged, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from actors import Recorder
from bus import open_bus, run
from contracts import BusConfig, RecorderConfig


def event(user: str, session: str, producer: str, seq: int) -> bytes:
    return (
        b'{"record_id":"%s-%06d","user_id":"%s","session_id":"%s","source":"proc",'
        b'"producer":"%s","seq":%d,"timestamp":"2026-11-22T09:15:02.137+01:00"}'
        % (producer.encode(), seq, user.encode(), session.encode(), producer.encode(), seq)
    )


async def main(root: Path, user: str, session: str, name: str, count: int, tasks: int) -> int:
    failures = 0
    async with open_bus(BusConfig()) as bus:
        recorder = Recorder(bus, root, RecorderConfig())
        await recorder.open_session(user, session)

        async def one_by_one(producer: str) -> None:
            nonlocal failures
            for seq in range(count):
                result = await recorder.append(event(user, session, producer, seq))
                failures += result.record_id != f"{producer}-{seq:06d}"

        async def batched(producer: str) -> None:
            nonlocal failures
            for start in range(0, count, 50):
                stop = min(count, start + 50)
                events = [event(user, session, producer, s) for s in range(start, stop)]
                results = await recorder.append_batch(events)
                failures += sum(isinstance(r, Exception) for r in results)

        async with anyio.create_task_group() as tg:
            for task in range(tasks):
                producer = f"{name}-{task}"
                tg.start_soon(batched if task == tasks - 1 else one_by_one, producer)
    return 1 if failures else 0


if __name__ == "__main__":
    root, user, session, name, count, tasks = sys.argv[1:7]
    use_uvloop = len(sys.argv) > 7 and sys.argv[7] == "uvloop"
    sys.exit(
        run(main, Path(root), user, session, name, int(count), int(tasks), use_uvloop=use_uvloop)
    )
