"""Shared fixtures: every async test runs on asyncio and on asyncio with uvloop.

Blocking the event loop is a bug, and two guards fail the test that does it:

- ``blockbuster`` (as anyio's own suite uses it) makes a known blocking call, made
  on the loop's thread from the product packages (``bus``, ``actors``, ``contracts``,
  ``actorbus``), raise ``BlockingError``: file and socket IO, ``time.sleep``,
  ``os.stat`` and friends, plus ``flock``/``lockf`` and ``fsync`` added here. It does
  not depend on timing, so load cannot make it flaky. Test code itself is not
  scanned: a test may read back a small file to assert on it.
- The loop runs in asyncio debug mode, and any single loop step longer than
  ``SLOW_STEP_S`` fails the test at teardown. This catches what blockbuster does
  not know (a subprocess wait, CPU-bound work). The threshold is generous, so a
  loaded 2-core machine does not trip it.

A test that must block on purpose says so with ``@pytest.mark.allow_blocking``.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from blockbuster import BlockBuster, BlockBusterFunction

#: A loop step (one callback or one task step) longer than this fails the test.
SLOW_STEP_S = 0.5

#: The packages whose code must never block the loop.
PRODUCT_PACKAGES = ["bus", "actors", "contracts", "actorbus"]


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    def new_loop() -> asyncio.AbstractEventLoop:
        if use_uvloop:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        loop.slow_callback_duration = SLOW_STEP_S
        return loop

    return new_loop


def _backend(use_uvloop: bool) -> tuple[str, dict[str, Any]]:
    options = {"use_uvloop": use_uvloop, "debug": True, "loop_factory": _loop_factory(use_uvloop)}
    return ("asyncio", options)


_BACKENDS: list[Any] = [pytest.param(_backend(False), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(_backend(True), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Run each anyio test on plain asyncio and on uvloop, both in debug mode."""
    return request.param


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_blocking: the test blocks the event loop on purpose (say why)"
    )


class _SlowSteps(logging.Handler):
    """Collects asyncio's debug-mode report of a loop step that took too long."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Executing "):
            self.seen.append(record.getMessage())


_slow_steps = _SlowSteps()
logging.getLogger("asyncio").addHandler(_slow_steps)


def _lock_would_wait(_fd: Any, operation: int, *_: Any) -> bool:
    return not operation & fcntl.LOCK_NB


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


def _blockbuster() -> BlockBuster:
    bb = BlockBuster(PRODUCT_PACKAGES)
    bb.functions.update(_extra_blocking(PRODUCT_PACKAGES))
    # anyio prepares a Unix socket path (stat, unlink) synchronously by design.
    for name in ("os.stat", "os.unlink"):
        bb.functions[name].can_block_in("anyio/_core/_sockets.py", "setup_unix_local_socket")
    return bb


@pytest.fixture(autouse=True)
def no_blocking_on_the_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose product code blocks the loop, or whose loop stalls."""
    if request.node.get_closest_marker("allow_blocking") is not None:
        yield
        return
    _slow_steps.seen.clear()
    bb = _blockbuster()
    bb.activate()
    try:
        yield
    finally:
        bb.deactivate()
    slow, _slow_steps.seen[:] = list(_slow_steps.seen), []
    if slow:
        pytest.fail(
            f"the event loop was blocked for more than {SLOW_STEP_S}s: " + "; ".join(slow),
            pytrace=False,
        )
