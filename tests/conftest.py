"""Shared fixtures: every async test runs on asyncio and on asyncio with uvloop.

Blocking the event loop is a bug, and two guards fail the test that does it:

- ``blockbuster`` (as anyio's own suite uses it) makes a known blocking call, made
  on the loop's thread from the product packages (``bus``, ``actors``, ``contracts``,
  ``actorbus``), raise ``BlockingError``: reading and writing files, socket IO,
  ``time.sleep``, a contended ``threading.Lock``, plus ``flock``/``lockf`` and
  ``fsync`` added here (file-system metadata calls such as ``os.stat`` are left
  out). It does not depend on timing, so load cannot make it flaky. Test code
  itself is not scanned: a test may read back a small file to assert on it.
- A watchdog thread fails an async test whose loop stops turning for longer than
  ``SLOW_STEP_S`` (a heartbeat callback on the loop goes unserved), and reports
  where the loop thread was stuck. This catches what blockbuster does not know (a
  subprocess wait, CPU-bound work, a blocking call in test code). The threshold is
  generous, so a loaded 2-core machine does not trip it. It stands in for asyncio's
  debug-mode slow-callback warning: the same measure on both loops, with the place
  it happened, and without debug mode's cost on every future and callback.

A test that must block on purpose says so with ``@pytest.mark.allow_blocking``.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import gc
import importlib.util
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from blockbuster import BlockBuster, BlockBusterFunction

#: A loop step (one callback or one task step) longer than this fails the test.
SLOW_STEP_S = 0.5

#: The packages whose code must never block the loop.
PRODUCT_PACKAGES = ["bus", "actors", "contracts", "actorbus"]


_BACKENDS: list[Any] = [pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Run each anyio test on plain asyncio and on uvloop."""
    return request.param


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_blocking: the test blocks the event loop on purpose (say why)"
    )


class LoopWatchdog:
    """Notices, from a thread of its own, a loop that stops turning.

    A heartbeat callback on the loop stamps ``beat`` every ``period`` seconds;
    the watching thread records a stall, with the loop thread's stack, when the
    loop has been running without a beat for longer than ``limit`` (plus one
    period). Time the loop spends stopped between fixtures and the test counts as
    no stall.
    """

    def __init__(self, limit: float = SLOW_STEP_S, period: float = 0.05) -> None:
        self.limit = limit
        self.period = period
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        # Written by the loop thread (beat) and the watching thread (idle_since);
        # each is one float assignment, read by the watching thread only.
        self.beat = time.monotonic()
        self.idle_since = 0.0
        self.stalls: list[str] = []
        self._handle: asyncio.TimerHandle | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._handle is not None:
            self._handle.cancel()
        self._thread.join()

    def _beat(self) -> None:
        self.beat = time.monotonic()
        self._handle = self.loop.call_later(self.period, self._beat)

    def _watch(self) -> None:
        stall: list[Any] | None = None  # [longest wait so far, where the loop was]
        while not self._done.wait(self.period / 2):
            now = time.monotonic()
            if not self.loop.is_running():
                self.idle_since = now
                late = 0.0
            else:
                late = now - max(self.beat, self.idle_since)
            if late > self.limit + self.period:
                if stall is None:
                    stall = [late, self._where()]
                stall[0] = late
            elif stall is not None:
                self._record(stall)
                stall = None
        if stall is not None:
            self._record(stall)

    def _record(self, stall: list[Any]) -> None:
        late, where = stall
        self.stalls.append(f"the loop did not turn for {late:.2f}s, stuck at:\n{where}")

    def _where(self) -> str:
        # Formatted by hand: the standard formatter parses source for its carets,
        # and CPython 3.11's parser state is not safe to share with the loop thread.
        frame = sys._current_frames().get(self.loop_thread)
        if frame is None:
            return "?"
        return "".join(
            f'  File "{f.filename}", line {f.lineno}, in {f.name}\n    {f.line}\n'
            for f in traceback.extract_stack(frame, limit=6)
        )


@pytest.fixture
async def loop_watchdog() -> AsyncIterator[LoopWatchdog]:
    """A running :class:`LoopWatchdog` on the test's loop."""
    watchdog = LoopWatchdog()
    watchdog.start()
    try:
        yield watchdog
    finally:
        watchdog.stop()


def _lock_would_wait(_fd: Any, operation: int, *_: Any) -> bool:
    taking = operation & (fcntl.LOCK_SH | fcntl.LOCK_EX)
    return bool(taking) and not operation & fcntl.LOCK_NB


def _extra_blocking(scanned: list[str]) -> dict[str, BlockBusterFunction]:
    """Blocking calls this project is most likely to make and blockbuster does not list."""
    extra = {
        name: BlockBusterFunction(None, name, scanned_modules=scanned)
        for name in ("os.fsync", "os.fdatasync")
    }
    for name in ("fcntl.flock", "fcntl.lockf"):
        extra[name] = BlockBusterFunction(
            None,
            name,
            scanned_modules=scanned,
            can_block_predicate=lambda *args: not _lock_would_wait(*args),
        )
    return extra


@functools.cache
def _blockbuster() -> BlockBuster:
    bb = BlockBuster(PRODUCT_PACKAGES)
    # File-system metadata calls (stat, mkdir, rename, unlink, path resolution) are
    # not flagged: they are quick, a service makes a few while it starts, and a
    # stalled disk under them is what the watchdog measures. Reading, writing,
    # locking, syncing, sleeping and socket IO on the loop are what must never happen.
    for name in [n for n in bb.functions if n.startswith(("os.path.", *_METADATA))]:
        del bb.functions[name]
    bb.functions.update(_extra_blocking(PRODUCT_PACKAGES))
    return bb


_METADATA = tuple(
    f"os.{name}"
    for name in (
        "access",
        "getcwd",
        "link",
        "listdir",
        "mkdir",
        "readlink",
        "remove",
        "rename",
        "replace",
        "rmdir",
        "scandir",
        "stat",
        "statvfs",
        "symlink",
        "unlink",
    )
)


@pytest.fixture(autouse=True)
def no_blocking_on_the_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose product code blocks the loop, or whose loop stalls."""
    if request.node.get_closest_marker("allow_blocking") is not None:
        yield
        return
    watchdog: LoopWatchdog | None = None
    if "anyio_backend" in request.fixturenames:
        watchdog = request.getfixturevalue("loop_watchdog")
    bb = _blockbuster()
    bb.activate()
    try:
        yield
    finally:
        bb.deactivate()
    if watchdog is not None and watchdog.stalls:
        pytest.fail(
            f"the event loop was blocked for more than {SLOW_STEP_S}s: "
            + "\n".join(watchdog.stalls),
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport() -> Iterator[None]:
    """Keep the garbage collector out of the failure report.

    CPython 3.11 keeps one AST recursion counter per process: a finalizer that
    formats a traceback (an asyncio future whose exception nobody retrieved, left
    by a failing test) while pytest parses source for the report raises
    ``SystemError: AST constructor recursion depth mismatch`` and ends the run
    with an internal error instead of the failure.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh nats-server with JetStream on a free loopback port, stopped by its pid.

    Skips where the binary is missing, fails under ``CI=true`` (``support/nats_server.py``).
    """
    from support.nats_server import NatsServer, require_nats_server

    server = NatsServer(require_nats_server(), tmp_path_factory.mktemp("nats") / "js").start()
    try:
        yield server
    finally:
        server.stop()
