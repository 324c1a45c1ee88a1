"""The recording boundary: what an event must be before any writer sees it.

Everything here is pure (no IO): safe ids, the session log's place under the root,
the session topic's name, event validation and the envelope line. Validation reads
only the four required fields and keeps the bytes it received; nothing is decoded
and re-encoded except a pretty-printed event, whose insignificant whitespace is
folded so it fits on one line (values, ``timestamp`` included, stay byte for byte).
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from contracts import ActorbusError, EventHead, EventTooLarge, InvalidEvent

from .._shared.numbers import INT_MIN, json_plain, json_suspect, json_unportable, unportable

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
_RECORD_ID_OF = operator.attrgetter("record_id")
_USER_ID_OF = operator.attrgetter("user_id")
_SESSION_ID_OF = operator.attrgetter("session_id")
_SOURCE_OF = operator.attrgetter("source")
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# A number a session's whole-event decoder takes: an int64 or a finite double. msgspec
# checks both in C ("Number out of range" for a float literal that overflows). It is
# stricter than what every reader carries (uint64 above int64 is portable too): such
# an event only goes the long way, which decides it.
_Number = Annotated[int, msgspec.Meta(ge=INT_MIN, le=2**63 - 1)] | float
_SCALAR_SHAPES: dict[type, Any] = {str: str, bool: bool, int: _Number, float: _Number}
# The most fields (at every depth) and the deepest nesting a whole-event decoder has.
_SHAPE_FIELDS_MAX = 64
_SHAPE_DEPTH_MAX = 8
# A batch this small is validated event by event (a session decoder gains nothing).
_SESSION_BATCH_MIN = 4
_SESSION_DECODERS_MAX = 64
_SCAN_SLICE = 128
_ENCODER = msgspec.json.Encoder()
_DECODE_ANY = msgspec.json.Decoder().decode
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

    __slots__ = ("_clock", "_key", "_second", "_second_text", "_stamp")

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock
        self._key: object = None
        self._second = -1
        self._second_text = ""
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
                seconds, milli = divmod(millis, 1000)
                if seconds != self._second:
                    # The date and time up to the second, formatted once a second.
                    self._second = seconds
                    self._second_text = format_recorded_at(_EPOCH + timedelta(seconds=seconds))[:20]
                self._key = millis
                self._set_stamp(f"{self._second_text}{milli:03d}Z")
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
        self._key = key
        self._set_stamp(format_recorded_at(moment))

    def _set_stamp(self, text: str) -> None:
        prefix = b'{"recorded_at":"' + text.encode() + b'","event":'
        self._stamp = (text, prefix, b"}\n" + prefix)


class _Unset:
    """The type of :data:`_UNSET`: no heads were given."""


_UNSET = _Unset()


def _all_of(heads: list[EventHead], key: tuple[str, str]) -> bool:
    """Whether every head is of session ``key``, with a non-empty record_id and source.

    What a session decoder checks, done here in C-level passes over generic heads
    (for a session that has no decoder yet).
    """
    user_id, session_id = key
    return (
        set(map(_USER_ID_OF, heads)) == {user_id}
        and set(map(_SESSION_ID_OF, heads)) == {session_id}
        and all(map(_RECORD_ID_OF, heads))
        and all(map(_SOURCE_OF, heads))
    )


class EventCheck:
    """Validates events against the recording contract and returns what to write.

    Args:
        max_event_bytes: The bound on one whole line, envelope and newline included.
    """

    __slots__ = ("_session_decoders", "_sessions_seen", "max_event_bytes", "max_raw_bytes")

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_raw_bytes = max_event_bytes - ENVELOPE_OVERHEAD
        # Per-session batch decoders, each with whether it takes whole events (see
        # plain_batch); bounded, cleared when full.
        self._session_decoders: dict[tuple[str, str], tuple[Callable[[Any], Any], bool]] = {}
        self._sessions_seen: set[tuple[str, str]] = set()

    def check(self, event: bytes | Mapping[str, Any]) -> tuple[bytes, EventHead]:
        """Validate one event; return the bytes to embed and its required fields.

        Args:
            event: One JSON object exactly as received, or an already decoded
                mapping (encoded here once).

        Returns:
            The event as one line of JSON (the received bytes where they already
            are one line) and its head.

        Raises:
            InvalidEvent: Not a JSON object, not UTF-8, a number not every reader
                can carry (``docs/protocol.md``), a required field missing,
                empty or not a string, or an unsafe ``user_id``/``session_id``.
            EventTooLarge: The line would exceed ``max_event_bytes``.
        """
        if type(event) is bytes and len(event) <= self.max_raw_bytes and json_plain(event):
            # The common event: one line, ASCII, under the bound. Decoded once; any
            # doubt (an error, an empty field, an id not yet known safe) goes the
            # long way below, which gives the precise error.
            try:
                head = _HEAD.decode(event)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                pass
            else:
                if (
                    head.record_id
                    and head.source
                    and head.user_id in _KNOWN_SAFE
                    and head.session_id in _KNOWN_SAFE
                ):
                    return event, head
        return self._check_any(event)

    def _check_any(self, event: bytes | Mapping[str, Any]) -> tuple[bytes, EventHead]:
        """:meth:`check` for any event shape, with its precise errors."""
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
        if head.user_id not in _KNOWN_SAFE:
            check_id(head.user_id, "user_id")
        if head.session_id not in _KNOWN_SAFE:
            check_id(head.session_id, "session_id")
        if folded:
            # Raw newlines can only be whitespace between tokens (JSON strings
            # cannot hold them), so folding the whitespace changes no value.
            raw = msgspec.json.format(raw, indent=0)
            if len(raw) > self.max_raw_bytes:
                raise self._too_large(len(raw))
        # What is acknowledged must read back through every framing. A mapping is
        # walked as given: its NaN and Infinity were already written as null above.
        if isinstance(event, Mapping):
            why = unportable(event) if b"null" in raw or json_suspect(raw) else None
        else:
            why = json_unportable(raw) if json_suspect(raw) else None
        if why is not None:
            raise InvalidEvent(
                f"event holds {why}, which not every reader can carry; nothing was written"
            )
        return raw, head

    def check_batch(
        self,
        events: Sequence[bytes | Mapping[str, Any]],
        heads: list[EventHead] | _Unset | None = _UNSET,
    ) -> list[tuple[bytes, EventHead] | ActorbusError]:
        """Validate many events: one entry per event, its :meth:`check` result or error.

        The common shape (every event bytes on one line, ASCII, under the size bound)
        is validated for the whole batch at once: one join, one scan for line breaks
        and non-ASCII bytes, and one decode of the heads as a JSON array, all in C.
        Any event that shape does not settle, or a batch it fails on, goes through
        :meth:`check` one event at a time, so the outcome is the same either way.
        ``heads`` is what :meth:`heads_at_once` already returned for ``events``, when
        the caller has it (so the batch is not decoded twice).
        """
        if isinstance(heads, _Unset):
            heads = self.heads_at_once(events)
        if heads is not None:
            known = _KNOWN_SAFE
            checked: list[tuple[bytes, EventHead] | ActorbusError] = []
            append = checked.append
            check = self.check
            for event, head in zip(events, heads, strict=True):
                if (
                    head.record_id
                    and head.source
                    and head.user_id in known
                    and head.session_id in known
                ):
                    append((event, head))  # type: ignore[arg-type]
                else:
                    try:
                        append(check(event))
                    except ActorbusError as exc:
                        append(exc)
            return checked
        results: list[tuple[bytes, EventHead] | ActorbusError] = []
        for event in events:
            try:
                results.append(self.check(event))
            except ActorbusError as exc:
                results.append(exc)
        return results

    def plain_batch(
        self, events: Sequence[bytes | Mapping[str, Any]]
    ) -> tuple[tuple[tuple[str, str], list[str]] | None, list[EventHead] | None]:
        """Validate a batch in C-level passes as far as its shape allows.

        Plain: every event bytes, one line, ASCII and under the size bound.

        Returns:
            ``(session, record_ids), None`` for a plain batch of one known-safe
            session whose every event is valid: the caller needs no per-event
            step. ``None, heads`` for another plain batch: every event's decoded
            head, for :meth:`check_batch`. ``None, None`` when the batch is not
            plain (or an event is not a JSON object): :meth:`check_batch` then
            checks each event from scratch.

        A session's events are decoded by a decoder made for that session the
        second time it sends such a batch (making one costs about as much as
        decoding a few hundred events); until then the events are decoded
        generically and the same checks run as C-level passes over the heads.

        The session's decoder takes only that ``user_id`` and ``session_id`` and
        non-empty ``record_id`` and ``source``. Where it can, it also takes every
        other field, typed by the shape of the event it was made from (strings,
        booleans, numbers, nulls, objects, lists of strings or of numbers): msgspec
        then checks each number in C as it decodes it, and the batch needs no scan
        for unportable numbers (``actors/_shared/numbers.py``). A batch such a
        decoder rejects (another shape, another session, an empty field, a number
        it cannot take) is decided the long way, and the session keeps only the
        head decoder from then on. Nothing else is scanned or decoded twice.
        """
        if not events or set(map(type, events)) != {bytes}:
            return None, None
        plain: Sequence[bytes] = events  # type: ignore[assignment]
        generic: Callable[[Any], Any] = _HEAD.decode
        key: tuple[str, str] | None = None
        decode: Callable[[Any], Any] | None = None
        if len(plain) >= _SESSION_BATCH_MIN:
            try:
                first, last = generic(plain[0]), generic(plain[-1])
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                return None, None
            if (
                first.user_id == last.user_id
                and first.session_id == last.session_id
                and first.user_id in _KNOWN_SAFE
                and first.session_id in _KNOWN_SAFE
            ):
                key = (first.user_id, first.session_id)
                entry = self._session_decoders.get(key) or self._session_decoder(key, plain[0])
                if entry is not None:
                    decode, whole = entry
                    if whole and self._plain(plain, numbers=False):
                        try:
                            own = list(map(decode, plain))
                        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                            # Decided the long way below; this session keeps its head decoder.
                            decode = self._head_decoder(key)
                            self._session_decoders[key] = (decode, False)
                        else:
                            return (key, list(map(_RECORD_ID_OF, own))), None
        if not self._plain(plain):
            return None, None
        heads: list[Any] | None = None
        try:
            if key is not None:
                if decode is None:
                    heads = list(map(generic, plain))
                    if _all_of(heads, key):
                        return (key, list(map(_RECORD_ID_OF, heads))), None
                else:
                    try:
                        own = list(map(decode, plain))
                    except msgspec.ValidationError:
                        pass  # another session's event, or an empty field
                    else:
                        return (key, list(map(_RECORD_ID_OF, own))), None
            if heads is None:
                heads = list(map(generic, plain))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None, None
        return None, heads

    def _session_decoder(
        self, key: tuple[str, str], sample: bytes
    ) -> tuple[Callable[[Any], Any], bool] | None:
        """Make ``key``'s decoder if the session was seen before; else remember it.

        Returns:
            The decoder and whether it takes whole events (shaped as ``sample``),
            or ``None`` the first time the session is seen.
        """
        seen = self._sessions_seen
        if key not in seen:
            if len(seen) >= _SESSION_DECODERS_MAX:
                seen.clear()
            seen.add(key)
            return None
        decoders = self._session_decoders
        if len(decoders) >= _SESSION_DECODERS_MAX:
            decoders.clear()
        whole = _whole_event_type(key, sample)
        entry: tuple[Callable[[Any], Any], bool] = (
            (self._head_decoder(key), False)
            if whole is None
            else (msgspec.json.Decoder(whole).decode, True)
        )
        decoders[key] = entry
        return entry

    @staticmethod
    def _head_decoder(key: tuple[str, str]) -> Callable[[Any], Any]:
        """A decoder of ``key``'s heads: its ids, and non-empty record_id and source."""
        user_id, session_id = key
        head = msgspec.defstruct(
            "SessionHead",
            [
                ("record_id", _NonEmpty),
                ("user_id", Literal[user_id]),
                ("session_id", Literal[session_id]),
                ("source", _NonEmpty),
            ],
            frozen=True,
            gc=False,
        )
        return msgspec.json.Decoder(head).decode

    def _plain(self, events: Sequence[bytes | Mapping[str, Any]], *, numbers: bool = True) -> bool:
        """Whether every event is bytes, under the bound, one line, ASCII, no suspect number.

        A suspect number (see ``actors/_shared/numbers.py``) sends the batch event by
        event through :meth:`check`, which decides it. ``numbers=False`` leaves the
        numbers to the caller (a whole-event decoder checks each one).

        The scans run over slices joined a few at a time: one allocation of the
        whole batch would be large enough for the allocator to map and unmap it
        each time, which costs more than the scans.
        """
        if not events or set(map(type, events)) != {bytes}:
            return False
        plain: Sequence[bytes] = events  # type: ignore[assignment]
        bound = self.max_raw_bytes
        for at in range(0, len(plain), _SCAN_SLICE):
            part = plain[at : at + _SCAN_SLICE]
            joined = b"".join(part)
            if numbers:
                if not json_plain(joined):
                    return False
            elif 10 in joined or 13 in joined or not joined.isascii():
                return False
            # A slice whose events together fit the bound needs no look at each size.
            if len(joined) > bound and max(map(len, part)) > bound:
                return False
        return True

    def heads_at_once(self, events: Sequence[bytes | Mapping[str, Any]]) -> list[EventHead] | None:
        """Every event's head, decoded without a Python loop, or ``None`` if not plain.

        Each event is decoded on its own (a ``map`` over the C decoder), so each
        must be exactly one JSON object; see :meth:`_plain` for the rest.
        """
        if not self._plain(events):
            return None
        try:
            return list(map(_HEAD.decode, events))  # type: ignore[arg-type]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None

    def _too_large(self, size: int) -> EventTooLarge:
        return EventTooLarge(
            f"event line of {size + ENVELOPE_OVERHEAD} bytes exceeds max_event_bytes "
            f"({self.max_event_bytes})"
        )


def _whole_event_type(key: tuple[str, str], sample: bytes) -> Any | None:
    """A type that takes whole events of session ``key`` shaped as ``sample``.

    Every field of ``sample`` is required and typed by its value, and no other
    field is taken, so decoding an event into it checks every number the event
    holds. ``None`` when ``sample`` holds a shape this does not type (an empty
    list, a list of objects or of mixed kinds), or is too large or too deep.
    """
    try:
        value = _DECODE_ANY(sample)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if type(value) is not dict:
        return None
    user_id, session_id = key
    head: dict[str, Any] = {
        "record_id": _NonEmpty,
        "user_id": Literal[user_id],
        "session_id": Literal[session_id],
        "source": _NonEmpty,
    }
    budget = [_SHAPE_FIELDS_MAX]
    return _object_type(value, head, budget, 0)


def _object_type(
    value: dict[str, Any], fixed: dict[str, Any], budget: list[int], depth: int
) -> Any:
    """The Struct type of a JSON object shaped as ``value`` (``None`` if untyped)."""
    if depth > _SHAPE_DEPTH_MAX or len(value) > budget[0]:
        return None
    budget[0] -= len(value)
    fields: list[tuple[str, Any]] = []
    rename: dict[str, str] = {}
    for index, (name, item) in enumerate(value.items()):
        shape = fixed.get(name)
        if shape is None:
            shape = _value_type(item, budget, depth)
            if shape is None:
                return None
        # The head keeps its names (the caller reads record_id); any other field
        # gets one that cannot clash, whatever its key.
        attribute = name if name in fixed else f"f{index}"
        fields.append((attribute, shape))
        rename[attribute] = name
    try:
        return msgspec.defstruct(
            "EventShape", fields, rename=rename, forbid_unknown_fields=True, gc=False
        )
    except (TypeError, ValueError):  # a key msgspec cannot name a field by
        return None


def _value_type(item: Any, budget: list[int], depth: int) -> Any:
    """The type of one JSON value shaped as ``item`` (``None`` if untyped)."""
    kind = type(item)
    if item is None:
        return type(None)
    if kind in _SCALAR_SHAPES:
        return _SCALAR_SHAPES[kind]
    if kind is dict:
        return _object_type(item, {}, budget, depth + 1)
    if kind is list and item:
        kinds = {_SCALAR_SHAPES.get(type(element)) for element in item}
        if len(kinds) == 1 and (shape := kinds.pop()) in (str, _Number):
            return list[shape]  # type: ignore[valid-type]
    return None
