"""Framing without IO: splitting a byte stream into frames, encoding messages into frames.

Two framings share one socket, chosen by the first byte a client sends:

- ``msgpack``: each frame is a 4-byte big-endian length, then that many bytes of
  MessagePack;
- ``jsonl``: a first byte ``{`` means JSON Lines, one object per line.

:class:`FrameReader` is fed whatever a read returned and hands back every complete
frame in it at once (a server that decodes one frame per wake-up tops out an order
of magnitude lower). :func:`parse_request` turns one frame into a :class:`Request`;
every decoding failure, nesting too deep included, becomes ``InvalidRequest``.
:class:`FrameWriter` encodes messages into one reusable buffer, so a batch of
responses is written with one call.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import msgspec

from contracts import (
    FRAME_HEADER_BYTES,
    ActorbusError,
    FrameTooLarge,
    Framing,
    InvalidRequest,
    contract_names,
    safe_decode_message,
)

__all__ = ["FrameReader", "FrameWriter", "Request", "Result", "is_http", "parse_request"]

T = TypeVar("T")

_LENGTH = struct.Struct(">I")
_BRACE: Final = 0x7B  # "{": the first byte of a JSON Lines connection
_BLANK: Final = frozenset(b" \t\r")
_QUOTED = re.compile(r"'[^']*'|`[^`]*`")


class FrameReader:
    """Splits a byte stream into frames; no IO, so any transport can drive it.

    ``feed`` takes bytes as they arrive; ``frames`` returns the complete frames
    (payloads without header or newline), at most ``limit`` of them, leaving the rest
    buffered for a later call. A frame over ``max_frame_bytes`` sets :attr:`fatal`
    (``FrameTooLarge``): the frames before it are still returned, nothing after it is.

    Frames are zero-copy views of the bytes fed; the reader never mutates them, so
    a view stays valid as long as it is referenced.

    Attributes:
        framing: ``"msgpack"`` or ``"jsonl"``; ``None`` until the first byte arrived
            when the reader was created to detect it.
        fatal: The error that ended the stream, or ``None``.
    """

    __slots__ = (
        "_chunk",
        "_closed",
        "_extra",
        "_need",
        "_parts",
        "_pos",
        "fatal",
        "framing",
        "max_frame_bytes",
    )

    def __init__(self, max_frame_bytes: int, framing: Framing | None = None) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.framing: Framing | None = framing
        self.fatal: FrameTooLarge | None = None
        self._closed = False
        # Unparsed input is chunk[pos:] followed by parts. Parts are joined into the
        # chunk only once a frame can complete, so a large frame arriving in many
        # reads is copied once. need: bytes from pos a frame takes (> 0), unknown
        # (0: parse on the next call), or -1: chunk[pos:] holds no newline (jsonl).
        self._chunk = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._extra = 0
        self._need = 0

    def close(self) -> None:
        """Drop what is buffered and ignore anything fed later (the stream is done)."""
        self._chunk = b""
        self._pos = 0
        self._parts = []
        self._extra = 0
        self._need = 0
        self._closed = True

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._chunk) - self._pos + self._extra

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer (ignored once :attr:`fatal` is set)."""
        if not data or self.fatal is not None or self._closed:
            return
        if self.framing is None:
            self.framing = "jsonl" if data[0] == _BRACE else "msgpack"
        if self._pos >= len(self._chunk) and not self._parts:
            self._chunk = data
            self._pos = 0
            self._need = 0
        else:
            self._parts.append(data)
            self._extra += len(data)

    def frames(self, limit: int = 1 << 62) -> list[memoryview]:
        """Return up to ``limit`` complete frames, in order."""
        if self._closed or self.fatal is not None or limit <= 0:
            return []
        if self._parts and not self._join():
            return []
        if self.framing == "jsonl":
            return self._lines(limit)
        return self._binary(limit)

    def _join(self) -> bool:
        """Merge pending parts into the chunk if a frame can complete; False if not yet."""
        available = len(self._chunk) - self._pos + self._extra
        if self._need > 0 and available < self._need:
            return False
        if self._need < 0 and not any(b"\n" in part for part in self._parts):
            if available > self.max_frame_bytes:
                self._fail(available)
            return False
        self._chunk = b"".join([self._chunk[self._pos :], *self._parts])
        self._pos = 0
        self._parts = []
        self._extra = 0
        self._need = 0
        return True

    def _fail(self, size: int) -> None:
        self.fatal = FrameTooLarge(
            f"frame of at least {size} bytes exceeds max_frame_bytes ({self.max_frame_bytes})"
        )

    def _binary(self, limit: int) -> list[memoryview]:
        chunk = self._chunk
        view = memoryview(chunk)
        end = len(chunk)
        pos = self._pos
        most = self.max_frame_bytes
        out: list[memoryview] = []
        self._need = 0
        while len(out) < limit:
            if end - pos < FRAME_HEADER_BYTES:
                self._need = FRAME_HEADER_BYTES
                break
            (size,) = _LENGTH.unpack_from(chunk, pos)
            if size > most:
                self._fail(size)
                break
            start = pos + FRAME_HEADER_BYTES
            stop = start + size
            if stop > end:
                self._need = FRAME_HEADER_BYTES + size
                break
            out.append(view[start:stop])
            pos = stop
        self._pos = pos
        return out

    def _lines(self, limit: int) -> list[memoryview]:
        chunk = self._chunk
        view = memoryview(chunk)
        end = len(chunk)
        pos = self._pos
        most = self.max_frame_bytes
        out: list[memoryview] = []
        self._need = 0
        while len(out) < limit:
            newline = chunk.find(b"\n", pos)
            if newline < 0:
                if end - pos > most:
                    self._fail(end - pos)
                self._need = -1
                break
            if newline - pos > most:
                self._fail(newline - pos)
                break
            # Blank lines (a bare newline, or CRLF from a terminal) are not requests.
            if newline == pos or (chunk[pos] in _BLANK and chunk[pos:newline].isspace()):
                pos = newline + 1
                continue
            out.append(view[pos:newline])
            pos = newline + 1
        self._pos = pos
        return out


class FrameWriter:
    """Encodes messages as frames of one framing, appending to a caller's buffer."""

    __slots__ = ("_encoder", "_jsonl", "framing")

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._jsonl = framing == "jsonl"
        self._encoder: msgspec.json.Encoder | msgspec.msgpack.Encoder = (
            msgspec.json.Encoder() if self._jsonl else msgspec.msgpack.Encoder()
        )

    def add(self, message: Any, buffer: bytearray) -> None:
        """Append ``message`` as one frame to ``buffer``.

        On failure (a value the encoder cannot encode) the buffer is left as it was.

        Raises:
            TypeError: ``message`` holds a value the framing cannot encode.
        """
        start = len(buffer)
        try:
            if self._jsonl:
                self._encoder.encode_into(message, buffer, -1)
                buffer.append(10)
            else:
                buffer += b"\0\0\0\0"
                self._encoder.encode_into(message, buffer, -1)
                _LENGTH.pack_into(buffer, start, len(buffer) - start - FRAME_HEADER_BYTES)
        except BaseException:
            del buffer[start:]
            raise

    def encode(self, message: Any) -> bytes:
        """Return ``message`` as one frame."""
        buffer = bytearray()
        self.add(message, buffer)
        return bytes(buffer)


class Request(msgspec.Struct, eq=False, gc=False):
    """One request read from a connection, handed to the op's handler.

    The frame is decoded lazily: only ``id`` and ``op`` are read up front, and a
    handler decodes its fields with :meth:`decode` into the op's own type. A
    msgspec Struct: built in C, one per frame read.

    Attributes:
        id: The request's ``id`` exactly as sent (a :class:`msgspec.Raw`), or ``None``.
        op: The op name (empty when the frame had none).
        body: The frame's payload.
        framing: The connection's framing.
        error: Set when the frame could not be read as a request (or was read after a
            shutdown began); such a request is answered with it, never dispatched.
    """

    id: Any
    op: str
    body: memoryview | bytes
    framing: Framing
    error: ActorbusError | None = None

    def decode(self, type: type[T]) -> T:
        """Decode the whole frame as ``type`` (an :class:`~contracts.OpRequest` subclass).

        Raises:
            InvalidRequest: A field is missing, mistyped or unknown, or the frame is
                nested too deeply.
        """
        decoder = _typed_decoders[self.framing].get(type)
        if decoder is None:
            decoder = _new_decoder(self.framing, type)
        try:
            result: T = decoder.decode(self.body)
        except Exception as exc:
            raise InvalidRequest(describe_decode_error(exc, self.framing, type)) from None
        return result

    @staticmethod
    def decode_all(requests: Sequence[Request], type: type[T]) -> list[T] | None:
        """Decode requests of one framing as ``type`` in one C-level pass.

        Returns:
            The decoded requests, or ``None`` when any of them fails (decode each
            with :meth:`decode` then, to know which and why).
        """
        framing = requests[0].framing
        decoder = _typed_decoders[framing].get(type)
        if decoder is None:
            decoder = _new_decoder(framing, type)
        try:
            return list(map(decoder.decode, [request.body for request in requests]))
        except Exception:
            return None

    def fields(self) -> dict[str, Any]:
        """Decode the frame as a plain map (``id`` and ``op`` included)."""
        return self.decode(dict[str, Any])


class Result:
    """A handler's result with a status other than 200 (``Result(value, 201)``)."""

    __slots__ = ("status", "value")

    def __init__(self, value: Any, status: int = 200) -> None:
        self.value = value
        self.status = status

    def __repr__(self) -> str:
        return f"Result({self.value!r}, {self.status})"


class _Head(msgspec.Struct):
    # Raw keeps the id exactly as the client wrote it and costs no object building;
    # every other field is skipped by the decoder without being built.
    id: msgspec.Raw = msgspec.Raw()
    op: Any = None


_HEAD_DECODERS: Final[dict[str, msgspec.json.Decoder[_Head] | msgspec.msgpack.Decoder[_Head]]] = {
    "jsonl": msgspec.json.Decoder(_Head),
    "msgpack": msgspec.msgpack.Decoder(_Head),
}
# Typed decoders, one per framing and type, built on first use and reused.
_typed_decoders: Final[dict[str, dict[Any, Any]]] = {"jsonl": {}, "msgpack": {}}


def _new_decoder(framing: Framing, type: Any) -> Any:
    decoder: Any = (
        msgspec.json.Decoder(type) if framing == "jsonl" else msgspec.msgpack.Decoder(type)
    )
    _typed_decoders[framing][type] = decoder
    return decoder


def describe_decode_error(exc: BaseException, framing: Framing, type: Any = None) -> str:
    """A safe message for a decoding failure: what and where, never a rejected value.

    A field the request type does not have is the client's text, so it is never
    named: only the type's own field names appear (``contracts.safe_decode_message``).
    """
    if isinstance(exc, RecursionError):
        return "the request is nested too deeply"
    if isinstance(exc, msgspec.ValidationError):
        names = contract_names(type) if type is not None else frozenset()
        return safe_decode_message(exc, "request", names, type)
    kind = "JSON" if framing == "jsonl" else "MessagePack"
    if isinstance(exc, msgspec.DecodeError):
        detail = _QUOTED.sub("value", str(exc)).split("malformed: ", 1)[-1]
        return f"the frame is not valid {kind}: {detail}"
    return f"the frame is not a valid {kind} request"


_BAD_ID: Final = "the request id is not valid UTF-8"


def _unsafe_id(rid: msgspec.Raw, framing: Framing) -> bool:
    """Whether an id cannot be echoed as it is: text in it is not valid UTF-8.

    The raw id is echoed byte for byte, so it is checked here (only when it is not
    all ASCII): a response must stay valid JSON, or valid MessagePack text.
    """
    if bytes(rid).isascii():
        return False
    try:
        if framing == "jsonl":
            msgspec.json.decode(rid)
        else:
            msgspec.msgpack.decode(rid)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return True
    return False


def parse_requests(bodies: list[memoryview], framing: Framing) -> list[Request]:
    """:func:`parse_request` for every frame of one read, the heads decoded in one C-level pass."""
    try:
        heads = list(map(_HEAD_DECODERS[framing].decode, bodies))
    except Exception:
        return [parse_request(body, framing) for body in bodies]
    requests: list[Request] = []
    append = requests.append
    for head, body in zip(heads, bodies, strict=True):
        op = head.op
        rid = head.id
        if type(op) is str and not (len(rid) and _unsafe_id(rid, framing)):
            append(Request(rid if len(rid) else None, op, body, framing))
        else:
            append(parse_request(body, framing))
    return requests


def parse_request(body: memoryview | bytes, framing: Framing) -> Request:
    """Read ``id`` and ``op`` from one frame; a bad frame gives a request with ``error``."""
    try:
        head = _HEAD_DECODERS[framing].decode(body)
    except Exception as exc:
        return Request(None, "", body, framing, InvalidRequest(describe_decode_error(exc, framing)))
    rid = head.id if len(head.id) else None
    if rid is not None and _unsafe_id(rid, framing):
        # Answered with id null: the id cannot be echoed as valid text.
        return Request(None, "", body, framing, InvalidRequest(_BAD_ID))
    op = head.op
    if type(op) is not str:
        what = "has no op" if op is None else "has an op that is not a string"
        return Request(rid, "", body, framing, InvalidRequest(f"the request {what}"))
    return Request(rid, op, body, framing)


def is_http(data: bytes) -> bool:
    """Whether a connection's first bytes start an HTTP request (a method token).

    A method starts with an ASCII letter. A JSON Lines connection starts with ``{``;
    a MessagePack frame with a length whose first byte is a letter would be over
    1 GiB, far beyond any frame limit: the three never collide (``docs/http.md``).
    """
    return data[:1].isalpha()
