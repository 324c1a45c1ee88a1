"""The blocking client, for the command line and scripts: the async client's calls, no loop.

Usage::

    with SyncClient.connect(path, timeout=5) as client:
        client.request("ping")
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from contracts import ActorbusError, Framing, Timeout

from .._errors import ConnectionBroken, ConnectionClosed
from .client import DEFAULT_MAX_FRAME_BYTES, DEFAULT_WINDOW, ClientCodec

__all__ = ["SyncClient"]

_READ_SIZE = 256 << 10


class SyncClient:
    """A blocking connection to an actorbus server; create it with :meth:`connect`.

    Not thread-safe: use one client per thread.
    """

    def __init__(self, sock: socket.socket, codec: ClientCodec) -> None:
        self._sock = sock
        self._codec = codec
        self._closed = False

    @classmethod
    def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        framing: Framing = "msgpack",
        timeout: float | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> SyncClient:
        """Connect to the server listening on ``path``.

        Args:
            path: The socket path.
            framing: ``"msgpack"`` (binary) or ``"jsonl"``.
            timeout: Seconds any one send or receive may block (``None``: no limit).
            max_frame_bytes: The largest answer accepted.

        Raises:
            ConnectionBroken: Nothing listens there (the OS error is the ``__cause__``).
        """
        codec = ClientCodec(framing, max_frame_bytes)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except OSError as exc:
            sock.close()
            reason = exc.strerror or type(exc).__name__
            raise ConnectionBroken(f"cannot connect to {os.fspath(path)}: {reason}") from exc
        return cls(sock, codec)

    @property
    def timeout(self) -> float | None:
        """Seconds any one send or receive may block (``None``: no limit); settable."""
        return self._sock.gettimeout()

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def request(self, op: str, /, **fields: Any) -> Any:
        """Send one request and return its result.

        Raises:
            ActorbusError: The server answered with an error (rebuilt as its own class).
            ConnectionBroken: The connection broke before the answer arrived.
            Timeout: No answer within the client's timeout (the request may still be
                handled; its late answer is skipped).
        """
        self._check()
        buffer = bytearray()
        rid = self._codec.add_request(op, fields, buffer)
        self._send(buffer)
        outcome = self._answer(rid)
        if isinstance(outcome, ActorbusError):
            raise outcome
        return outcome

    def pipeline(
        self, requests: Iterable[tuple[str, Mapping[str, Any]]], *, window: int = DEFAULT_WINDOW
    ) -> list[Any]:
        """Send many requests without waiting for each answer; return the outcomes in order.

        Returns:
            One entry per request, in order: its result, or the :class:`ActorbusError`
            it was answered with (returned, not raised).
        """
        self._check()
        plan = self._codec.pipeline(requests, window)
        while not plan.done:
            frames = plan.to_send()
            if frames is not None:
                self._send(frames)
            plan.take(self._next())
        return plan.outcomes

    def subscribe(self, op: str = "subscribe", /, **fields: Any) -> Iterator[Any]:
        """Open a stream and yield its items until the server ends it.

        The stream holds the connection until the server ends it, so closing the
        iterator early (``contextlib.closing``, or ``close()``) closes this client.

        Raises:
            ActorbusError: The server refused the stream or ended it with an error.
        """
        self._check()
        codec = self._codec
        buffer = bytearray()
        rid = codec.add_request(op, fields, buffer)
        self._send(buffer)
        finished = False
        try:
            while True:
                step = codec.stream_message(self._next(), rid)
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
            if not finished:
                self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- IO --------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise ConnectionClosed("the client is closed")

    def _send(self, data: bytearray) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError:
            # Part of a frame may have left: the stream cannot be trusted any more.
            self.close()
            raise Timeout("the server did not take the request in time; client closed") from None
        except OSError as exc:
            raise ConnectionBroken("the connection to the server broke") from exc

    def _next(self) -> Any:
        codec = self._codec
        while not codec.ready:
            try:
                data = self._sock.recv(_READ_SIZE)
            except TimeoutError:
                raise Timeout("no answer within the client's timeout") from None
            except OSError as exc:
                raise ConnectionBroken("the connection to the server broke") from exc
            if not data:
                raise ConnectionBroken("the server closed the connection")
            codec.feed(data)
        return codec.ready.popleft()

    def _answer(self, rid: int) -> Any:
        codec = self._codec
        while True:
            message = self._next()
            if not codec.is_stale(message, rid):
                return codec.outcome(message, rid)
