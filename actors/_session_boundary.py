"""The recording boundary: what an event must be before any writer sees it.

Everything here is pure (no IO): safe ids, the session log's place under the root,
the session topic's name, event validation and the envelope line. Validation reads
only the four required fields and keeps the bytes it received; nothing is decoded
and re-encoded except a pretty-printed event, whose insignificant whitespace is
folded so it fits on one line (values, ``timestamp`` included, stay byte for byte).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from contracts import ActorbusError, EventHead, EventTooLarge, InvalidEvent

__all__ = [
    "ENVELOPE_OVERHEAD",
    "EventCheck",
    "RecordedAt",
    "check_id",
    "format_recorded_at",
    "session_path",
    "session_topic",
]

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEAD = msgspec.json.Decoder(EventHead)
_ENCODER = msgspec.json.Encoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ``{"recorded_at":"<24 characters>","event":`` before the event and ``}\n`` after it:
#: every line is exactly this many bytes longer than the event it carries.
ENVELOPE_OVERHEAD = len(b'{"recorded_at":"') + 24 + len(b'","event":') + len(b"}\n")

# Ids already checked, so a hot session pays the pattern once. Only check_id adds
# to it, from any thread (single set operations are atomic under the GIL); it only
# ever holds safe ids. Bounded: cleared when full (a miss only costs the check).
_KNOWN_SAFE: set[str] = set()
_KNOWN_SAFE_MAX = 65_536


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a safe path segment, else raise :class:`InvalidEvent`.

    Safe: 1 to 128 ASCII letters, digits, ``.``, ``_`` or ``-``, and no ``..`` (so
    neither ``.`` nor ``..`` nor anything that could climb out of its directory).

    Args:
        value: The candidate id.
        field: Its field name, used in the error message.

    Raises:
        InvalidEvent: The value is not a string or not safe. The message never
            repeats the value (it may be an attack or a private path).
    """
    if type(value) is str and value in _KNOWN_SAFE:
        return value
    if not isinstance(value, str) or _SAFE_ID.fullmatch(value) is None or ".." in value:
        raise InvalidEvent(
            f"{field} must be 1 to 128 of A-Z a-z 0-9 . _ - and must not contain '..'"
        )
    if value == ".":
        raise InvalidEvent(f"{field} must not be '.'")
    if len(_KNOWN_SAFE) >= _KNOWN_SAFE_MAX:
        _KNOWN_SAFE.clear()
    _KNOWN_SAFE.add(value)
    return value


def session_path(root: Path, user_id: str, session_id: str) -> Path:
    """The session log ``<root>/logs/users/<user_id>/sessions/<session_id>.jsonl``.

    Raises:
        InvalidEvent: An id is not safe.
    """
    check_id(user_id, "user_id")
    check_id(session_id, "session_id")
    return root / "logs" / "users" / user_id / "sessions" / f"{session_id}.jsonl"


def session_topic(user_id: str, session_id: str) -> str:
    """The topic on which each envelope recorded for the session is published.

    Ids cannot contain ``/``, so the name is unambiguous.
    """
    return f"session:{user_id}/{session_id}"


def format_recorded_at(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, e.g. ``2026-11-22T09:15:02.137Z``.

    A naive ``moment`` is taken to be UTC already (clocks are injected; the default
    one is aware).
    """
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


class RecordedAt:
    """Stamps batches with ``recorded_at``, reusing the work within one millisecond.

    Many batches share a millisecond under load, and formatting costs more than
    comparing. One instance per recorder, used on the loop thread only.

    Args:
        clock: Returns the current time (UTC; a naive value is taken as UTC);
            ``None`` reads the system clock.
    """

    __slots__ = ("_clock", "_key", "_stamp")

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock
        self._key: object = None
        self._stamp: tuple[str, bytes, bytes] = ("", b"", b"")

    def __call__(self) -> tuple[str, bytes, bytes]:
        """Stamp a batch now.

        Returns:
            The ``recorded_at`` text, the bytes before a chunk's first event, and
            the bytes between two events (closing one line, opening the next).
        """
        if self._clock is None:
            # The system clock: whole milliseconds since the epoch, exactly.
            millis = time.time_ns() // 1_000_000
            if millis != self._key:
                self._restamp(millis, _EPOCH + timedelta(milliseconds=millis))
            return self._stamp
        moment = self._clock()
        if moment.tzinfo is not UTC:
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        key = (
            moment.microsecond // 1000,
            moment.second,
            moment.minute,
            moment.hour,
            moment.day,
            moment.month,
            moment.year,
        )
        if key != self._key:
            self._restamp(key, moment)
        return self._stamp

    def _restamp(self, key: object, moment: datetime) -> None:
        text = format_recorded_at(moment)
        prefix = b'{"recorded_at":"' + text.encode() + b'","event":'
        self._key = key
        self._stamp = (text, prefix, b"}\n" + prefix)


class EventCheck:
    """Validates events against the recording contract and returns what to write.

    Args:
        max_event_bytes: The bound on one whole line, envelope and newline included.
    """

    __slots__ = ("max_event_bytes", "max_raw_bytes")

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_raw_bytes = max_event_bytes - ENVELOPE_OVERHEAD

    def check(self, event: bytes | Mapping[str, Any]) -> tuple[bytes, EventHead]:
        """Validate one event; return the bytes to embed and its required fields.

        Args:
            event: One JSON object exactly as received, or an already decoded
                mapping (encoded here once).

        Returns:
            The event as one line of JSON (the received bytes where they already
            are one line) and its head.

        Raises:
            InvalidEvent: Not a JSON object, not UTF-8, a required field missing,
                empty or not a string, or an unsafe ``user_id``/``session_id``.
            EventTooLarge: The line would exceed ``max_event_bytes``.
        """
        if type(event) is bytes:
            raw = event
        elif isinstance(event, bytearray | memoryview):
            raw = bytes(event)
        elif isinstance(event, Mapping):
            try:
                raw = _ENCODER.encode(event)
            except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
                name = type(exc).__name__
                raise InvalidEvent(f"event cannot be encoded as JSON ({name})") from None
        else:
            raise InvalidEvent("event must be a JSON object (bytes) or a mapping")
        # Membership of an int is a plain memchr (a bytes needle costs far more).
        folded = False
        if 10 in raw or 13 in raw:
            # A line ending (a JSONL line with its newline) is dropped; one left
            # inside means the event is pretty-printed and must be folded.
            raw = raw.strip(b" \t\r\n")
            folded = 10 in raw or 13 in raw
        if not folded and len(raw) > self.max_raw_bytes:
            # A pretty-printed event shrinks when folded, so only it is decoded first.
            raise self._too_large(len(raw))
        try:
            head = _HEAD.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(f"event is not a valid event object: {exc}") from None
        except (msgspec.DecodeError, RecursionError):
            raise InvalidEvent("event is not valid JSON") from None
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidEvent("event is not valid UTF-8") from None
        if not head.record_id:
            raise InvalidEvent("record_id must be a non-empty string")
        if not head.source:
            raise InvalidEvent("source must be a non-empty string")
        check_id(head.user_id, "user_id")
        check_id(head.session_id, "session_id")
        if folded:
            # Raw newlines can only be whitespace between tokens (JSON strings
            # cannot hold them), so folding the whitespace changes no value.
            raw = msgspec.json.format(raw, indent=0)
            if len(raw) > self.max_raw_bytes:
                raise self._too_large(len(raw))
        return raw, head

    def check_batch(
        self, events: Sequence[bytes | Mapping[str, Any]]
    ) -> list[tuple[bytes, EventHead] | ActorbusError]:
        """Validate many events: one entry per event, its :meth:`check` result or error.

        The common shape (bytes on one line, ASCII, ids already known safe) is
        checked inline, which measured about a third cheaper per event than a call
        each; anything it does not settle goes through :meth:`check`, so the
        outcome is the same either way.
        """
        results: list[tuple[bytes, EventHead] | ActorbusError] = []
        append = results.append
        decode = _HEAD.decode
        known = _KNOWN_SAFE
        limit = self.max_raw_bytes
        check = self.check
        for event in events:
            if (
                type(event) is bytes
                and len(event) <= limit
                and 10 not in event
                and 13 not in event
                and event.isascii()
            ):
                try:
                    head = decode(event)
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                    pass
                else:
                    if (
                        head.record_id
                        and head.source
                        and head.user_id in known
                        and head.session_id in known
                    ):
                        append((event, head))
                        continue
            try:
                append(check(event))
            except ActorbusError as exc:
                append(exc)
        return results

    def _too_large(self, size: int) -> EventTooLarge:
        return EventTooLarge(
            f"event line of {size + ENVELOPE_OVERHEAD} bytes exceeds max_event_bytes "
            f"({self.max_event_bytes})"
        )
