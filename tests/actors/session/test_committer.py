"""The committer: one IO thread for every session, never the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from actors import FileSessionStore, session_path
from actors.session.committer import Committer
from actors.session.store import LogWindow, Outcome, SessionStore
from contracts import ActorbusError, InvalidEvent

pytestmark = pytest.mark.anyio

LINE = b'{"recorded_at":"2026-01-01T00:00:00.000Z","event":{"record_id":"x"}}\n'


class RecordingStore(FileSessionStore):
    """The real file store, noting which thread ran each append and in what order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, int]] = []

    def append(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        wait: bool,
    ) -> tuple[int, ActorbusError | None]:
        self.calls.append((session_id, threading.get_ident()))
        return super().append(user_id, session_id, chunks, durable=durable, wait=wait)


async def test_jobs_of_many_sessions_run_on_one_thread_that_is_not_the_loop(
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path)
    for i in range(50):
        store.open_session("u1", f"s{i}")
    committer = Committer(asyncio.get_running_loop(), store)
    futures = [committer.submit("u1", f"s{i}", [LINE], durable=False) for i in range(50)]
    outcomes = await asyncio.gather(*futures)
    assert outcomes == [(1, None)] * 50
    threads = {thread for _, thread in store.calls}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert [session for session, _ in store.calls] == [f"s{i}" for i in range(50)]
    assert committer.threads_started == 1
    for i in range(50):
        assert session_path(tmp_path, "u1", f"s{i}").read_bytes() == LINE


async def test_a_slow_disk_never_blocks_the_loop(tmp_path: Path) -> None:
    gate = threading.Event()

    class SlowStore(FileSessionStore):
        """A fake slow disk: each append waits until the loop has run on."""

        def append(self, *args: object, **kwargs: object) -> Outcome:
            assert gate.wait(10), "the event loop was blocked while the disk was slow"
            return super().append(*args, **kwargs)  # type: ignore[arg-type]

    store = SlowStore(tmp_path)
    store.open_session("u1", "s1")
    committer = Committer(asyncio.get_running_loop(), store)
    fut = committer.submit("u1", "s1", [LINE], durable=False)
    await anyio.sleep(0.01)  # the loop keeps turning while the write waits
    assert not fut.done()
    gate.set()
    assert await fut == (1, None)


async def test_errors_from_the_store_become_outcomes(tmp_path: Path) -> None:
    class RefusingStore(FileSessionStore):
        def append(self, *args: object, **kwargs: object) -> Outcome:
            raise InvalidEvent("refused")

    class BrokenStore(FileSessionStore):
        def append(self, *args: object, **kwargs: object) -> Outcome:
            raise ZeroDivisionError

    loop = asyncio.get_running_loop()
    written, error = await Committer(loop, RefusingStore(tmp_path)).submit(
        "u1", "s1", [LINE], durable=False
    )
    assert written == 0 and isinstance(error, InvalidEvent)
    written, error = await Committer(loop, BrokenStore(tmp_path)).submit(
        "u1", "s1", [LINE], durable=False
    )
    assert written == 0 and error is not None and error.code == "RecorderIOError"


async def test_a_log_locked_elsewhere_stalls_only_its_own_session(tmp_path: Path) -> None:
    store = FileSessionStore(tmp_path)
    store.open_session("u1", "locked")
    store.open_session("u1", "free")
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
    try:
        assert holder.stdout is not None
        line = await anyio.to_thread.run_sync(holder.stdout.readline)
        assert line.strip() == "locked"
        committer = Committer(asyncio.get_running_loop(), store)
        first = committer.submit("u1", "locked", [b"1\n"], durable=False)
        second = committer.submit("u1", "locked", [b"2\n"], durable=False)
        other = await committer.submit("u1", "free", [LINE], durable=False)
        assert other == (1, None)  # another session went through while the lock is held
        third = committer.submit("u1", "locked", [b"3\n"], durable=False)
        await anyio.sleep(0.01)
        assert not first.done() and not second.done() and not third.done()
        assert committer.contended == 1
    finally:
        await anyio.to_thread.run_sync(holder.communicate, "")
    assert await asyncio.gather(first, second, third) == [(1, None)] * 3
    assert held.read_bytes() == b"1\n2\n3\n"  # queued behind the lock, in order


async def test_the_io_thread_exits_when_idle_and_comes_back(tmp_path: Path) -> None:
    store = FileSessionStore(tmp_path)
    store.open_session("u1", "s1")
    committer = Committer(asyncio.get_running_loop(), store, idle_exit_s=0.01)
    assert await committer.submit("u1", "s1", [LINE], durable=False) == (1, None)
    with anyio.fail_after(5):
        while committer._thread_alive:
            await anyio.sleep(0.01)
    assert await committer.submit("u1", "s1", [LINE], durable=False) == (1, None)
    assert committer.threads_started == 2


async def test_jobs_fail_instead_of_hanging_when_no_thread_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_start_without_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", fake_start_without_threads)
    committer = Committer(asyncio.get_running_loop(), FileSessionStore(tmp_path))
    written, error = await committer.submit("u1", "s1", [LINE], durable=False)
    assert written == 0 and error is not None and error.code == "RecorderIOError"


async def test_a_completion_that_raises_is_reported_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    store = FileSessionStore(tmp_path)
    store.open_session("u1", "s1")
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        committer = Committer(loop, store)
        seen: list[Outcome] = []

        def broken(outcome: Outcome) -> None:
            raise RuntimeError("a completion bug")

        committer.write("u1", "s1", [LINE], durable=False, then=broken)
        committer.write("u1", "s1", [LINE], durable=False, then=seen.append)
        assert await committer.submit("u1", "s1", [LINE], durable=False) == (1, None)
    finally:
        loop.set_exception_handler(previous)
    assert seen == [(1, None)]
    assert [type(context["exception"]) for context in reported] == [RuntimeError]
    assert session_path(tmp_path, "u1", "s1").read_bytes() == LINE * 3


class WaitOnceStore:
    """A session store that is not the file store: it delegates to real files, and its
    first ``try_append`` for each session says it would have to wait."""

    def __init__(self, root: Path) -> None:
        self._files = FileSessionStore(root)
        self.waited: list[str] = []
        self._tried: set[str] = set()

    def open_session(self, user_id: str, session_id: str) -> bool:
        return self._files.open_session(user_id, session_id)

    def append(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> Outcome:
        self.waited.append(session_id)
        return self._files.append(user_id, session_id, chunks, durable=durable)

    def try_append(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> Outcome | None:
        if session_id not in self._tried:
            self._tried.add(session_id)
            return None
        return self._files.try_append(user_id, session_id, chunks, durable=durable)

    def read(self, user_id: str, session_id: str, offset: int, limit: int) -> bytes:
        return self._files.read(user_id, session_id, offset, limit)

    def size(self, user_id: str, session_id: str) -> int:
        return self._files.size(user_id, session_id)

    def window(self, user_id: str, session_id: str, offset: int, limit: int) -> LogWindow:
        return self._files.window(user_id, session_id, offset, limit)


async def test_any_session_store_that_would_wait_gets_a_thread_of_its_own(
    tmp_path: Path,
) -> None:
    store = WaitOnceStore(tmp_path)
    checked: SessionStore = store  # the protocol is all the committer needs
    store.open_session("u1", "s1")
    committer = Committer(asyncio.get_running_loop(), checked)
    outcomes = await asyncio.gather(
        *(committer.submit("u1", "s1", [f"{n}\n".encode()], durable=False) for n in range(3))
    )
    assert outcomes == [(1, None)] * 3
    assert committer.contended == 1
    # The first waited on a thread of its own; the others queued behind it there, or
    # (once it was written) went through try_append: in order either way.
    assert store.waited[0] == "s1" and 1 <= len(store.waited) <= 3
    assert session_path(tmp_path, "u1", "s1").read_bytes() == b"0\n1\n2\n"
