"""The guards against blocking the event loop catch what they claim to catch."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from blockbuster import BlockingError
from conftest import SLOW_STEP_S, LoopWatchdog

import bus

pytestmark = pytest.mark.anyio

BUS_DIR = Path(bus.__file__).resolve().parent


def as_product_code(source: str, name: str) -> Callable[..., Any]:
    """A function whose frames the guard takes for the runtime's own code.

    The guard tells product code by the file a frame runs in, so compiling
    under a path inside ``bus/`` (no file is written) is all it takes.
    """
    namespace: dict[str, Any] = {}
    exec(compile(source, str(BUS_DIR / "_guard_probe.py"), "exec"), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


NAP = as_product_code("import time\ndef nap():\n    time.sleep(0)\n", "nap")
LOCK = as_product_code(
    "import fcntl\ndef lock(fd, operation):\n    fcntl.flock(fd, operation)\n", "lock"
)
READ = as_product_code(
    "def read(path):\n    with open(path, 'rb') as f:\n        return f.read()\n", "read"
)


async def test_a_blocking_call_from_product_code_on_the_loop_fails() -> None:
    with pytest.raises(BlockingError, match=r"time\.sleep"):
        NAP()


async def test_file_io_from_product_code_on_the_loop_fails_and_in_a_thread_passes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "data"
    target.write_bytes(b"payload")  # test code itself is not scanned
    with pytest.raises(BlockingError):
        READ(target)
    assert await anyio.to_thread.run_sync(READ, target) == b"payload"


async def test_flock_that_may_wait_fails_on_the_loop_but_not_nonblocking_or_in_a_thread(
    tmp_path: Path,
) -> None:
    with (tmp_path / "session.jsonl").open("wb") as handle:
        fd = handle.fileno()
        with pytest.raises(BlockingError, match="flock"):
            LOCK(fd, fcntl.LOCK_EX)
        LOCK(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        LOCK(fd, fcntl.LOCK_UN)
        await anyio.to_thread.run_sync(LOCK, fd, fcntl.LOCK_EX)
        await anyio.to_thread.run_sync(LOCK, fd, fcntl.LOCK_UN)


def test_off_the_loop_product_code_may_block() -> None:
    NAP()


@pytest.mark.allow_blocking
async def test_the_watchdog_reports_a_stalled_loop_and_where() -> None:
    watchdog = LoopWatchdog(limit=0.05, period=0.01)
    watchdog.start()
    try:
        await anyio.sleep(0.1)
        assert watchdog.stalls == [], "a loop that awaits is not stalled"
        time.sleep(0.3)  # blocks the loop on purpose
        await anyio.sleep(0)
    finally:
        watchdog.stop()
    assert len(watchdog.stalls) == 1
    assert "test_the_watchdog_reports_a_stalled_loop_and_where" in watchdog.stalls[0]


async def test_this_suite_runs_with_the_watchdog_on(loop_watchdog: LoopWatchdog) -> None:
    assert loop_watchdog.limit == SLOW_STEP_S
    await anyio.sleep(3 * loop_watchdog.period)
    assert loop_watchdog.stalls == []
