"""The session writer: the keyed actor that owns one session's log.

One instance per ``(user_id, session_id)``. Its mailbox is the session's order:
it takes everything queued as one batch (group commit), stamps ``recorded_at``,
builds the envelope lines around the event bytes it was given, and hands them to
the committer in chunks bounded by count and bytes, one ``write()`` each. It
answers only after the committer reports the write done, then publishes each
recorded envelope on the session's topic.

Events reach it already validated by the boundary (:class:`~actors.Recorder`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from bus import Actor, Bus
from contracts import ActorbusError, AppendResult

from ._session_boundary import format_recorded_at, session_topic
from ._session_committer import Committer

__all__ = ["Append", "AppendBatch", "SessionWriter", "WriterSettings"]


class Append:
    """Command: record one validated event; the reply is its :class:`AppendResult`."""

    __slots__ = ("raw", "record_id")

    def __init__(self, raw: bytes, record_id: str) -> None:
        self.raw = raw
        self.record_id = record_id


class AppendBatch:
    """Command: record validated events in order; the reply is one result per event."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[bytes, str]]) -> None:
        self.items = items


class WriterSettings:
    """What every writer of one recorder shares (read-only after construction)."""

    __slots__ = ("batch_max_bytes", "batch_max_events", "bus", "clock", "committer", "durable")

    def __init__(
        self,
        bus: Bus,
        committer: Committer,
        clock: Callable[[], datetime],
        *,
        durable: bool,
        batch_max_events: int,
        batch_max_bytes: int,
    ) -> None:
        self.bus = bus
        self.committer = committer
        self.clock = clock
        self.durable = durable
        self.batch_max_events = max(1, batch_max_events)
        self.batch_max_bytes = max(1, batch_max_bytes)


class SessionWriter(Actor):
    """The keyed actor that serialises one session's appends; see the module docstring.

    Args:
        key: ``(user_id, session_id)``, both already checked safe.
        settings: The recorder's shared settings.
    """

    #: How much of the mailbox one activation takes at once; chunks for ``write()``
    #: are then cut by ``batch_max_events`` and ``batch_max_bytes``.
    batch_size: ClassVar[int] = 4096

    def __init__(self, key: tuple[str, str], settings: WriterSettings) -> None:
        self._user_id, self._session_id = key
        self._topic = session_topic(*key)
        self._settings = settings

    async def receive_batch(self, messages: Sequence[Any]) -> Sequence[Any]:
        """Write every queued append as few chunks as the bounds allow; answer each."""
        settings = self._settings
        recorded_at = format_recorded_at(settings.clock())
        prefix = b'{"recorded_at":"' + recorded_at.encode() + b'","event":'
        max_events = settings.batch_max_events
        max_bytes = settings.batch_max_bytes
        lines: list[bytes] = []
        ids: list[str] = []
        chunks: list[bytes] = []
        ends: list[int] = []  # ends[k]: how many lines chunks[0..k] hold together
        start = size = 0
        singles = True
        for message in messages:
            if type(message) is Append:
                items = [(message.raw, message.record_id)]
            else:
                items = message.items
                singles = False
            for raw, record_id in items:
                line = b"".join((prefix, raw, b"}"))
                if len(lines) > start and (
                    len(lines) - start >= max_events or size + len(line) + 1 > max_bytes
                ):
                    chunks.append(_chunk(lines[start:]))
                    ends.append(len(lines))
                    start, size = len(lines), 0
                lines.append(line)
                ids.append(record_id)
                size += len(line) + 1
        if len(lines) > start:
            chunks.append(_chunk(lines[start:]))
            ends.append(len(lines))
        if not chunks:
            return [[] for _ in messages]
        written, error = await settings.committer.submit(
            self._user_id, self._session_id, chunks, durable=settings.durable
        )
        recorded = ends[written - 1] if written else 0
        results: list[AppendResult | ActorbusError] = [
            AppendResult(record_id, recorded_at) for record_id in ids[:recorded]
        ]
        if error is not None:
            # A fresh instance per event: each is raised in its own asker's task.
            results.extend(type(error)(error.message) for _ in range(len(ids) - recorded))
        if recorded and settings.bus.publish(self._topic, lines[0]):
            publish = settings.bus.publish
            for line in lines[1:recorded]:
                publish(self._topic, line)
        if singles:
            return results
        return _replies(messages, results)


def _chunk(lines: list[bytes]) -> bytes:
    lines.append(b"")  # the join then ends with the last line's newline
    return b"\n".join(lines)


def _replies(messages: Sequence[Any], results: list[AppendResult | ActorbusError]) -> list[Any]:
    replies: list[Any] = []
    at = 0
    for message in messages:
        if type(message) is Append:
            replies.append(results[at])
            at += 1
        else:
            count = len(message.items)
            replies.append(results[at : at + count])
            at += count
    return replies
