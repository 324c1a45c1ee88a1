"""The async client of the socket protocol, and the codec it shares with the blocking one.

Usage::

    async with await Client.connect(path) as client:
        await client.request("ping")
        results = await client.pipeline([("echo", {"value": i}) for i in range(1000)])

One request at a time per client (calls wait their turn); ``pipeline`` sends many
and reads the answers in order, keeping a window of requests in flight so neither
side ever waits on the other's full buffer.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final

import anyio
import anyio.abc
import msgspec

from contracts import OP_EVENT, ActorbusError, Framing, InvalidRequest, error_from_wire

from .._errors import ConnectionBroken, ConnectionClosed
from .wire import FrameReader, FrameWriter

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Client", "ClientCodec", "PipelinePlan"]

#: The largest answer a client accepts by default (a ``stats`` or ``live.read`` can be big).
DEFAULT_MAX_FRAME_BYTES: Final = 64 << 20
_READ_SIZE: Final = 256 << 10
DEFAULT_WINDOW: Final = 256


class _Error(msgspec.Struct):
    code: str = "InternalError"
    message: str = ""


class _Incoming(msgspec.Struct):
    # Lenient on purpose: a newer server may add fields, and a client must not break.
    id: Any = None
    ok: bool = False
    status: int = 0
    result: Any = None
    error: _Error | None = None
    op: str | None = None
    data: Any = None


class ClientCodec:
    """The IO-free half of a client: request ids, encoding, decoding and answer matching.

    Attributes:
        framing: The framing this client speaks.
        ready: Messages decoded and not yet consumed, in arrival order.
    """

    def __init__(self, framing: Framing, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if framing not in ("msgpack", "jsonl"):
            raise ValueError(f"unknown framing {framing!r}")
        self.framing: Framing = framing
        self._reader = FrameReader(max_frame_bytes, framing)
        self._writer = FrameWriter(framing)
        self._decoder: msgspec.json.Decoder[_Incoming] | msgspec.msgpack.Decoder[_Incoming] = (
            msgspec.json.Decoder(_Incoming)
            if framing == "jsonl"
            else msgspec.msgpack.Decoder(_Incoming)
        )
        self._next_id = 0
        self.ready: deque[_Incoming] = deque()

    def add_request(self, op: str, fields: Mapping[str, Any], buffer: bytearray) -> int:
        """Append one request frame to ``buffer``; return its id.

        Raises:
            InvalidRequest: ``fields`` names ``id`` or ``op``, or holds a value the
                framing cannot encode.
        """
        if "id" in fields or "op" in fields:
            raise InvalidRequest("a request's fields cannot be named id or op")
        self._next_id += 1
        rid = self._next_id
        message = {"id": rid, "op": op}
        message.update(fields)
        try:
            self._writer.add(message, buffer)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidRequest(f"the request cannot be encoded: {type(exc).__name__}") from None
        return rid

    def feed(self, data: bytes) -> None:
        """Decode every complete message in ``data`` into :attr:`ready`.

        Raises:
            ConnectionBroken: The server sent something that is not a message.
        """
        reader = self._reader
        reader.feed(data)
        decode = self._decoder.decode
        for frame in reader.frames():
            try:
                self.ready.append(decode(frame))
            except (msgspec.DecodeError, RecursionError):
                raise ConnectionBroken("the server sent a frame that is not a message") from None
        if reader.fatal is not None:
            raise ConnectionBroken("the server sent a frame over the client's max_frame_bytes")

    @staticmethod
    def is_stale(message: _Incoming, rid: int) -> bool:
        """Whether ``message`` answers an earlier, abandoned request (or is a stray event)."""
        if message.op == OP_EVENT:
            return True
        mid = message.id
        return type(mid) is int and mid < rid

    @staticmethod
    def outcome(message: _Incoming, rid: int) -> Any:
        """The result of the answer to request ``rid``, or the error it carries (returned).

        Raises:
            ConnectionBroken: The answer belongs to another request (the stream is out
                of step; nothing more on it can be trusted).
        """
        if message.id is not None and message.id != rid:
            raise ConnectionBroken(f"expected the answer to request {rid}, got another")
        if message.ok:
            return message.result
        error = message.error or _Error()
        return error_from_wire(error.code, error.message)

    def stream_message(self, message: _Incoming, rid: int) -> tuple[bool, Any] | None:
        """What ``message`` means to the stream opened by request ``rid``.

        Returns:
            ``(True, item)`` for one of its items, ``(False, outcome)`` for its end
            (the result, or the error it ended with), ``None`` for a message that
            is not the stream's (a stray event, an abandoned request's answer).
        """
        if message.op == OP_EVENT:
            return (True, message.data) if message.id == rid else None
        if self.is_stale(message, rid):
            return None
        return False, self.outcome(message, rid)

    def pipeline(
        self, requests: Iterable[tuple[str, Mapping[str, Any]]], window: int
    ) -> PipelinePlan:
        """A plan for sending ``requests`` with at most ``window`` of them in flight."""
        return PipelinePlan(self, list(requests), window)


class PipelinePlan:
    """One pipeline without IO: which frames to send next, and where each answer goes.

    The caller loops until :attr:`done`: it sends what :meth:`to_send` gives (when it
    gives anything), then reads one message and hands it to :meth:`take`. Frames go
    out in runs that refill the window once half of it is answered, so neither side
    waits on the other's full buffer.

    Attributes:
        outcomes: One entry per request answered so far, in order: its result, or the
            :class:`ActorbusError` it was answered with.
    """

    def __init__(
        self, codec: ClientCodec, requests: list[tuple[str, Mapping[str, Any]]], window: int
    ) -> None:
        self._codec = codec
        self._todo = requests
        self._window = window
        self._ids: deque[int] = deque()
        self._sent = 0
        self.outcomes: list[Any] = []

    @property
    def done(self) -> bool:
        """Whether every request has its outcome."""
        return len(self.outcomes) == len(self._todo)

    def to_send(self) -> bytearray | None:
        """The next run of request frames, or ``None`` while the window is more than half full.

        Raises:
            InvalidRequest: A request cannot be encoded (nothing of it was added).
        """
        todo, ids, window = self._todo, self._ids, self._window
        if self._sent >= len(todo) or len(ids) > window // 2:
            return None
        buffer = bytearray()
        add = self._codec.add_request
        while self._sent < len(todo) and len(ids) < window:
            op, fields = todo[self._sent]
            ids.append(add(op, fields, buffer))
            self._sent += 1
        return buffer

    def take(self, message: _Incoming) -> None:
        """Match one incoming message to the oldest request in flight.

        Raises:
            ConnectionBroken: The message answers a request other than that one.
        """
        rid = self._ids[0]
        codec = self._codec
        if codec.is_stale(message, rid):
            return
        self.outcomes.append(codec.outcome(message, rid))
        self._ids.popleft()


class Client:
    """An async connection to an actorbus server; create it with :meth:`connect`."""

    def __init__(self, stream: anyio.abc.ByteStream, codec: ClientCodec) -> None:
        self._stream = stream
        self._codec = codec
        self._lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        framing: Framing = "msgpack",
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> Client:
        """Connect to the server listening on ``path``.

        Raises:
            ConnectionBroken: Nothing listens there (the OS error is the ``__cause__``).
        """
        codec = ClientCodec(framing, max_frame_bytes)
        try:
            stream = await anyio.connect_unix(path)
        except OSError as exc:
            raise ConnectionBroken(f"cannot connect to {os.fspath(path)}: {exc.strerror}") from exc
        return cls(stream, codec)

    async def request(self, op: str, /, **fields: Any) -> Any:
        """Send one request and return its result.

        Raises:
            ActorbusError: The server answered with an error (rebuilt as its own class).
            ConnectionBroken: The connection broke before the answer arrived.
        """
        async with self._lock:
            self._check()
            buffer = bytearray()
            rid = self._codec.add_request(op, fields, buffer)
            await self._send(buffer)
            outcome = await self._answer(rid)
        if isinstance(outcome, ActorbusError):
            raise outcome
        return outcome

    async def pipeline(
        self, requests: Iterable[tuple[str, Mapping[str, Any]]], *, window: int = DEFAULT_WINDOW
    ) -> list[Any]:
        """Send many requests without waiting for each answer; return the outcomes in order.

        Args:
            requests: ``(op, fields)`` pairs.
            window: Requests in flight at most; keep it under the server's
                ``max_inflight_per_connection``.

        Returns:
            One entry per request, in order: its result, or the :class:`ActorbusError`
            it was answered with (returned, not raised, so one failure loses no other).
        """
        plan = self._codec.pipeline(requests, window)
        async with self._lock:
            self._check()
            while not plan.done:
                frames = plan.to_send()
                if frames is not None:
                    await self._send(frames)
                plan.take(await self._next())
        return plan.outcomes

    async def subscribe(self, op: str = "subscribe", /, **fields: Any) -> AsyncIterator[Any]:
        """Open a stream and yield its items until the server ends it.

        The stream holds the connection until the server ends it, so closing the
        iterator early (``contextlib.aclosing``, or ``aclose()``) closes this client.

        Raises:
            ActorbusError: The server refused the stream or ended it with an error.
        """
        await self._lock.acquire()
        finished = False
        try:
            self._check()
            buffer = bytearray()
            codec = self._codec
            rid = codec.add_request(op, fields, buffer)
            await self._send(buffer)
            while True:
                step = codec.stream_message(await self._next(), rid)
                if step is None:
                    continue
                more, value = step
                if more:
                    yield value
                    continue
                finished = True
                if isinstance(value, ActorbusError):
                    raise value
                return
        finally:
            self._lock.release()
            if not finished:
                await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._stream.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- IO --------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise ConnectionClosed("the client is closed")

    async def _send(self, data: bytearray) -> None:
        try:
            await self._stream.send(bytes(data))
        except anyio.ClosedResourceError:
            raise ConnectionClosed("the client is closed") from None
        except (anyio.BrokenResourceError, OSError) as exc:
            raise ConnectionBroken("the connection to the server broke") from exc

    async def _next(self) -> _Incoming:
        codec = self._codec
        while not codec.ready:
            try:
                data = await self._stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                raise ConnectionBroken("the server closed the connection") from None
            except anyio.ClosedResourceError:
                raise ConnectionClosed("the client is closed") from None
            except (anyio.BrokenResourceError, OSError) as exc:
                raise ConnectionBroken("the connection to the server broke") from exc
            codec.feed(data)
        return codec.ready.popleft()

    async def _answer(self, rid: int) -> Any:
        codec = self._codec
        while True:
            message = await self._next()
            if not codec.is_stale(message, rid):
                return codec.outcome(message, rid)
