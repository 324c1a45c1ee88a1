"""Session logs in NATS JetStream: the :class:`~.store.SessionBackend` for many hosts.

The mapping (``docs/scale-out.md``):

- ``partitions`` streams ``ACTORBUS_SESSIONS_<k>``, each holding the subjects
  ``actorbus.sessions.<k>.>``; a session lives in stream
  ``crc32("<user_id>/<session_id>") % partitions``, fixed once the streams exist.
- One subject per session, ``actorbus.sessions.<k>.<user>.<session>``, its ids as
  reversible tokens (``.`` is the subject separator: see :func:`encode_token`).
- ``session.open`` stores an empty marker message, expecting the subject to be
  empty: stored means created, "wrong last sequence" means it existed. An
  append to a subject without a marker is ``MissingSessionPath``.
- Each written chunk (complete envelope lines, the bytes a file would hold) is one
  message with ``Nats-Expected-Last-Subject-Sequence`` (per-session order across
  every host) and a ``Nats-Msg-Id`` of its own (a retry stores it once).

An acknowledgement is given only after JetStream acknowledged. A publish without
an answer has an unknown outcome: it is retried with the same id and the same
expected sequence until ``retry_deadline_s``. A single server refuses such a retry
as a wrong last sequence (10071) when the first attempt was stored; a cluster
answers it as a duplicate. Both are handled: after a 10071 the messages past the
expected sequence are looked through for our id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import api

from actors._shared.jetstream import (
    ERR_WRONG_LAST_SEQUENCE,
    HEADER_ROOM,
    JetStream,
    NotSent,
    PubAck,
    encode_token,
    until_ready,
)
from contracts import ActorbusError, MissingSessionPath, RecorderIOError

from .store import Outcome

__all__ = ["JetStreamSessions", "session_subject"]

log = logging.getLogger("actorbus.recorder")

_STREAM = "ACTORBUS_SESSIONS_{}"
_SUBJECTS = "actorbus.sessions.{}"
_OPEN_HEADER = "Actorbus-Open"
_PARTITIONS_KEY = "actorbus.partitions"
#: Last subject sequences kept per session; a bound, not a cache that must hit.
_LAST_MAX = 65_536
_NEVER_OPENED = "session was never opened (no session log); open it first"


def session_subject(user_id: str, session_id: str, partitions: int) -> tuple[str, str]:
    """The stream and the subject that hold one session's log."""
    k = zlib.crc32(f"{user_id}/{session_id}".encode()) % partitions
    subject = f"{_SUBJECTS.format(k)}.{encode_token(user_id)}.{encode_token(session_id)}"
    return _STREAM.format(k), subject


class JetStreamSessions:
    """Session logs in JetStream streams; see the module docstring.

    Create it with :meth:`open`, which makes sure the streams exist.

    Args:
        jetstream: The service's connection.
    """

    def __init__(self, jetstream: JetStream) -> None:
        self._jetstream = jetstream
        self._config = jetstream.config
        self._js = jetstream.js
        self._publish = jetstream.publisher.publish
        #: A chunk and its headers stay under the server's bound on one message.
        self.max_chunk_bytes: int | None = jetstream.max_payload - HEADER_ROOM
        # Each session's last subject sequence as this service last saw it; loop only.
        self._last: dict[str, int] = {}
        # Message ids: unique to this process, and across restarts of it.
        self._nonce = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.conflicts = 0
        self.retries = 0

    @classmethod
    async def open(cls, jetstream: JetStream) -> JetStreamSessions:
        """Make sure the partitioned streams exist (created with the configured replicas).

        Raises:
            RecorderIOError: The streams exist with another partition count, or
                cannot be created.
        """
        sessions = cls(jetstream)
        await sessions._ensure_streams()
        return sessions

    async def _ensure_streams(self) -> None:
        config = self._config
        wanted = str(config.partitions)
        for k in range(config.partitions):
            name = _STREAM.format(k)
            try:
                info = await until_ready(
                    functools.partial(self._js.stream_info, name), config.connect_timeout_s
                )
            except nats.js.errors.NotFoundError:
                info = None
            except (TimeoutError, nats.errors.Error) as exc:
                raise RecorderIOError(f"cannot read stream {name} ({type(exc).__name__})") from None
            if info is not None:
                found = (info.config.metadata or {}).get(_PARTITIONS_KEY)
                if found != wanted:
                    raise RecorderIOError(
                        f"stream {name} was created for {found or 'another number of'} "
                        f"partitions, and [storage.jetstream] partitions is {wanted}: the "
                        "partition count is fixed once the streams exist"
                    )
                continue
            stream = api.StreamConfig(
                name=name,
                subjects=[f"{_SUBJECTS.format(k)}.>"],
                storage=api.StorageType.FILE,
                num_replicas=config.replicas,
                duplicate_window=config.duplicate_window_s,
                max_msgs_per_subject=-1,
                allow_direct=True,
                deny_delete=True,
                metadata={_PARTITIONS_KEY: wanted},
            )
            try:
                await until_ready(
                    functools.partial(self._js.add_stream, stream), config.connect_timeout_s
                )
            except (TimeoutError, nats.errors.Error) as exc:
                raise RecorderIOError(
                    f"cannot create stream {name} ({type(exc).__name__}); does the server "
                    f"have room and {config.replicas} node(s) for its replicas?"
                ) from None

    def _msg_id(self) -> str:
        return f"{self._nonce}-{next(self._ids)}"

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- open and append ---------------------------------------------------------

    def open_session(self, user_id: str, session_id: str) -> Awaitable[bool]:
        """Store the session's marker: True when stored now, False when it existed."""
        return self._spawn(self._open(user_id, session_id))

    async def _open(self, user_id: str, session_id: str) -> bool:
        stream, subject = session_subject(user_id, session_id, self._config.partitions)
        try:
            seq = await self._store(stream, subject, b"", 0, opening=True)
        except _Existed:
            return False
        self._remember(subject, seq)
        return True

    def write(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        then: Callable[[Outcome], None],
    ) -> None:
        """Store the chunks in order, one message each; ``then(outcome)`` after.

        ``durable`` is the server's to keep (``sync_interval: always``, or
        replicas): ``docs/scale-out.md`` says what an acknowledgement means.
        """
        task = self._spawn(self._write(user_id, session_id, chunks))
        task.add_done_callback(lambda done: _deliver(done, then))

    async def _write(self, user_id: str, session_id: str, chunks: Sequence[bytes]) -> Outcome:
        stream, subject = session_subject(user_id, session_id, self._config.partitions)
        written = 0
        try:
            last = self._last.get(subject)
            if last is None:
                last = await self._last_seq(stream, subject)
            for chunk in chunks:
                last = await self._store(stream, subject, chunk, last)
                self._remember(subject, last)
                written += 1
        except ActorbusError as exc:
            return written, exc
        return written, None

    def _remember(self, subject: str, seq: int) -> None:
        if len(self._last) >= _LAST_MAX and subject not in self._last:
            self._last.clear()
        self._last[subject] = seq

    async def _last_seq(self, stream: str, subject: str) -> int:
        """The session's last subject sequence.

        Raises:
            MissingSessionPath: The session has no marker: never opened.
            RecorderIOError: JetStream cannot be asked.
        """
        try:
            msg = await until_ready(
                functools.partial(self._js.get_last_msg, stream, subject),
                self._config.retry_deadline_s,
            )
        except nats.js.errors.NotFoundError:
            raise MissingSessionPath(_NEVER_OPENED) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise RecorderIOError(
                f"cannot read the session's position in JetStream ({type(exc).__name__})"
            ) from None
        seq: int = msg.seq or 0
        return seq

    async def _store(
        self, stream: str, subject: str, payload: bytes, expected: int, *, opening: bool = False
    ) -> int:
        """Store one message after subject sequence ``expected``; return its sequence.

        Retried with the same id until the retry deadline when the outcome is unknown.

        Raises:
            _Existed: ``opening`` and the subject already holds a message.
            RecorderIOError: Refused, or no acknowledgement within the deadline (the
                message says whether it may have been stored).
        """
        msg_id = self._msg_id()
        headers = {"Nats-Msg-Id": msg_id}
        if opening:
            headers[_OPEN_HEADER] = "1"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.retry_deadline_s
        maybe_sent = False
        delay = 0.05
        while True:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
            ack: PubAck | None = None
            try:
                ack = await self._publish(subject, payload, headers)
            except NotSent:
                pass
            except TimeoutError:
                maybe_sent = True
            if ack is not None:
                error = ack.error
                if error is None:
                    return ack.seq
                if error.err_code == ERR_WRONG_LAST_SEQUENCE:
                    if opening and not maybe_sent:
                        raise _Existed
                    found, last = await self._look_past(stream, subject, expected, msg_id)
                    if found is not None:
                        return found  # the first attempt was stored
                    if opening:
                        raise _Existed
                    # Another host appended meanwhile: go after its messages.
                    self.conflicts += 1
                    expected = last
                    continue
                if error.code != 503:
                    raise RecorderIOError(
                        f"JetStream refused the write (error {error.code}/{error.err_code}); "
                        "nothing was recorded"
                    )
                # 503: no stream answers (a cluster electing a leader): retry.
            self.retries += 1
            if loop.time() >= deadline:
                if maybe_sent:
                    raise RecorderIOError(
                        "JetStream did not acknowledge the write within retry_deadline_s: it "
                        "may have been recorded; read the session back before sending it again"
                    )
                raise RecorderIOError(
                    "JetStream was unreachable until retry_deadline_s: nothing was recorded"
                )
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 1.0)

    async def _look_past(
        self, stream: str, subject: str, expected: int, msg_id: str
    ) -> tuple[int | None, int]:
        """Look for ``msg_id`` among the subject's messages after ``expected``.

        Returns:
            The message's sequence if found (else ``None``), and the subject's last
            sequence seen.
        """
        seq = expected
        while True:
            try:
                msg = await until_ready(
                    functools.partial(
                        self._js.get_msg, stream, seq=seq + 1, subject=subject, next=True
                    ),
                    self._config.retry_deadline_s,
                )
            except nats.js.errors.NotFoundError:
                return None, seq
            except (TimeoutError, nats.errors.Error) as exc:
                raise RecorderIOError(
                    f"cannot read the session back from JetStream ({type(exc).__name__}): "
                    "the write may have been recorded"
                ) from None
            seq = msg.seq or seq + 1
            if (msg.headers or {}).get("Nats-Msg-Id") == msg_id:
                return seq, seq

    # -- reading -----------------------------------------------------------------

    def replay(self, user_id: str, session_id: str) -> AsyncIterator[bytes]:
        """The session's lines up to its last message as it stands when asked."""
        return self._lines(user_id, session_id, follow=False, from_start=True)

    def follow(
        self, user_id: str, session_id: str, *, from_start: bool, poll_s: float
    ) -> AsyncIterator[bytes]:
        """The session's lines, then every line any host appends (no polling)."""
        return self._lines(user_id, session_id, follow=True, from_start=from_start)

    async def _lines(
        self, user_id: str, session_id: str, *, follow: bool, from_start: bool
    ) -> AsyncIterator[bytes]:
        stream, subject = session_subject(user_id, session_id, self._config.partitions)
        last = await self._last_seq(stream, subject)
        start = 1 if from_start else last + 1
        try:
            sub = await until_ready(
                functools.partial(
                    self._js.subscribe,
                    subject,
                    stream=stream,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    config=api.ConsumerConfig(opt_start_seq=start),
                    idle_heartbeat=2.0,
                ),
                self._config.retry_deadline_s,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            raise RecorderIOError(
                f"cannot read the session from JetStream ({type(exc).__name__})"
            ) from None
        try:
            if not follow and start > last:
                return
            async for msg in sub.messages:
                if msg.data:
                    lines = msg.data.split(b"\n")
                    lines.pop()  # after the last newline: empty
                    for line in lines:
                        yield line
                if not follow and msg.metadata.sequence.stream >= last:
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def aclose(self) -> None:
        """Wait for the writes in progress (the recorder has drained its writers)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _Existed(Exception):
    """An open found the session's subject holding messages already."""


def _deliver(done: asyncio.Task[Outcome], then: Callable[[Outcome], None]) -> None:
    if done.cancelled():
        outcome: Outcome = (
            0,
            RecorderIOError("the write was cancelled: it may have been recorded"),
        )
    elif (exc := done.exception()) is not None:
        log.error("JetStream write failed unexpectedly: %s", type(exc).__name__)
        outcome = (0, RecorderIOError(f"session log write failed ({type(exc).__name__})"))
    else:
        outcome = done.result()
    then(outcome)
