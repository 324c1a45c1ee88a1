"""The committer: one long-lived IO thread that runs every session's pending writes.

A hop to a worker thread costs far more than the append it carries (tens of
microseconds against a few), so the hop is amortised twice:

- on the loop, every write submitted during one loop cycle, whatever its session,
  is handed over together at the end of that cycle (one lock, one wake-up);
- the IO thread takes every job waiting, runs them in order, and returns all the
  outcomes with a single ``call_soon_threadsafe``.

Jobs run in submission order, so a session's order is the order its writer
submitted in. A job whose log is locked by another process does not stall the
others: it moves to a thread of its own that waits for the lock, and that
session's later jobs queue behind it there, while the IO thread goes on with
every other session.

The IO thread exits after ``idle_exit_s`` without work and is started again by the
next job, so an idle recorder holds no thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Sequence

import msgspec

from contracts import ActorbusError, RecorderIOError

from .store import Outcome, SessionStore

__all__ = ["Committer"]

log = logging.getLogger("actorbus.recorder")

_NO_THREAD: Outcome = (0, RecorderIOError("no thread available to write the session log"))


class _Job(msgspec.Struct):
    # A msgspec Struct: built in C, one per write submitted.
    user_id: str
    session_id: str
    chunks: Sequence[bytes]
    durable: bool
    then: Callable[[Outcome], None]


def _set_outcome(fut: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not fut.done():  # the waiter may have been cancelled (bus deadline)
        fut.set_result(outcome)


class Committer:
    """Runs session writes on one IO thread; see the module docstring.

    Args:
        loop: The event loop the writers run on.
        store: The storage the jobs are written to.
        idle_exit_s: The IO thread exits after this long without work.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        store: SessionStore,
        *,
        idle_exit_s: float = 1.0,
    ) -> None:
        self._loop = loop
        self._store = store
        self._idle_exit_s = idle_exit_s
        # Jobs submitted during this loop cycle; loop thread only.
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        # Guarded by _cond: the jobs handed to the IO thread, in submission order,
        # and whether that thread is alive (only it sets this false, as it exits).
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Job] = []
        self._thread_alive = False
        # Guarded by _cond: sessions whose log another process has locked, with
        # their jobs in order. A waiting thread owns each entry and removes it
        # once empty; the IO thread only appends, so order holds across both.
        self._held: dict[tuple[str, str], list[_Job]] = {}
        self.threads_started = 0
        self.contended = 0

    def submit(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> asyncio.Future[Outcome]:
        """Queue one session's write; the future completes with its :data:`Outcome`.

        Call on the loop thread. A session's jobs are written in the order submitted.
        """
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        self.write(
            user_id, session_id, chunks, durable=durable, then=functools.partial(_set_outcome, fut)
        )
        return fut

    def write(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        then: Callable[[Outcome], None],
    ) -> None:
        """Queue one session's write; ``then(outcome)`` runs on the loop once it is done.

        :meth:`submit` without a future: ``then`` is called directly by the loop
        callback that receives the IO thread's outcomes, one loop pass sooner than a
        future's done callback would run. It must not raise (an exception is logged
        through the loop's exception handler). Call on the loop thread.
        """
        self._pending.append(_Job(user_id, session_id, chunks, durable, then))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._pending = self._pending, []
        with self._cond:
            self._queue.extend(jobs)
            if self._thread_alive:
                self._cond.notify()
                return
            self._thread_alive = True
        self.threads_started += 1
        try:
            threading.Thread(target=self._run, name="actorbus-session-io", daemon=True).start()
        except RuntimeError:
            # No thread to be had: fail what waits rather than leave it hanging.
            with self._cond:
                self._thread_alive = False
                failed, self._queue = self._queue, []
            self._deliver([(job.then, _NO_THREAD) for job in failed])

    def _run(self) -> None:
        store = self._store
        cond = self._cond
        held = self._held
        while True:
            with cond:
                if not self._queue:
                    cond.wait(self._idle_exit_s)
                if not self._queue:
                    self._thread_alive = False
                    return
                jobs, self._queue = self._queue, []
            done: list[tuple[Callable[[Outcome], None], Outcome]] = []
            for job in jobs:
                if held:
                    key = (job.user_id, job.session_id)
                    with cond:
                        waiting = held.get(key)
                        if waiting is not None:
                            waiting.append(job)  # behind the job waiting for the lock
                            continue
                try:
                    tried = store.try_append(
                        job.user_id, job.session_id, job.chunks, durable=job.durable
                    )
                except Exception as exc:
                    tried = _crashed(exc)
                if tried is None:  # the store would have to wait: a thread of its own
                    self.contended += 1
                    key = (job.user_id, job.session_id)
                    with cond:
                        held[key] = [job]
                    try:
                        threading.Thread(
                            target=self._append_waiting,
                            args=(key,),
                            name="actorbus-session-lock",
                            daemon=True,
                        ).start()
                    except RuntimeError:
                        with cond:
                            del held[key]
                        outcome = _NO_THREAD
                    else:
                        continue
                else:
                    outcome = tried
                done.append((job.then, outcome))
            if done and not self._post(done):
                with cond:
                    self._thread_alive = False
                return

    def _append_waiting(self, key: tuple[str, str]) -> None:
        """Write a session's held jobs in order, waiting for its lock each time."""
        while True:
            with self._cond:
                waiting = self._held[key]
                if not waiting:
                    del self._held[key]
                    return
                job = waiting.pop(0)
            try:
                outcome = self._store.append(
                    job.user_id, job.session_id, job.chunks, durable=job.durable
                )
            except Exception as exc:
                outcome = _crashed(exc)
            self._post([(job.then, outcome)])

    def _deliver(self, done: list[tuple[Callable[[Outcome], None], Outcome]]) -> None:
        """On the loop: run each finished job's ``then``; one failing does not stop the rest."""
        for then, outcome in done:
            try:
                then(outcome)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "a session write's completion failed", "exception": exc}
                )

    def _post(self, done: list[tuple[Callable[[Outcome], None], Outcome]]) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._deliver, done)
        except RuntimeError:
            # The loop has closed: nobody is waiting for these outcomes any more.
            return False
        return True


def _crashed(exc: Exception) -> Outcome:
    if isinstance(exc, ActorbusError):
        return 0, exc
    log.error("session store failed unexpectedly: %s", type(exc).__name__)
    return 0, RecorderIOError(f"session log write failed ({type(exc).__name__})")
