"""One HTTP/1.1 connection: requests parsed by llhttp, answered in order, within bounds.

The protocol is an asyncio protocol, like the socket's own connections: each read
is fed to the parser (``parsing.py``), every request it completes is dispatched at
once (``dispatch.py``), and the answers that are ready are encoded into one buffer
(``answers.py``) and written with one call. Answers leave strictly in request
order (pipelining); a streamed answer holds the head until it ends.

Limits (``docs/http.md``): the size limits are the reader's; here are the time
limits: headers within ``header_timeout_s`` of the request's first byte and the
body within ``body_timeout_s`` of the headers (408, then close), an idle keep-alive
connection closed after ``keepalive_timeout_s``. A request the parser cannot read
is 400 and ends the connection: the stream cannot be resynchronised.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, cast

from contracts import ActorbusError

from .answers import CONTINUE, AnswerWriter
from .dispatch import Dispatcher
from .messages import HttpError, HttpLines, HttpRequest, HttpStream, error_body
from .parsing import Phase, RequestReader
from .ports import Shared
from .slots import Slot, resolve

__all__ = ["HttpProtocol"]

log = logging.getLogger("actorbus.http")


class HttpProtocol(asyncio.Protocol):
    """The server side of one HTTP/1.1 connection.

    Args:
        endpoint: The shared state: routes, limits, token, counters.
        tcp: Whether the connection came over the TCP listener.
    """

    def __init__(self, endpoint: Shared, *, tcp: bool) -> None:
        self._endpoint = endpoint
        self._loop = endpoint.loop
        self.tcp = tcp
        config = endpoint.config
        self._transport: asyncio.Transport | None = None
        self._reader = RequestReader(
            self._loop.time,
            tcp=tcp,
            max_header=config.max_header_bytes,
            max_body=endpoint.max_body_bytes,
            extra_headers=endpoint.cors_headers if endpoint.cors else None,
            on_continue=self._continue,
        )
        self._dispatcher = Dispatcher(endpoint, self._on_done)
        # Answers in request order: appended by dispatch, popped from the head by _flush.
        self._pending = self._dispatcher.pending
        self._answers = AnswerWriter(endpoint.count_error)
        self._continue_wanted = False  # a 100 Continue owed once the answers ahead are out
        self._stream: asyncio.Task[None] | None = None  # the streamed answer at the head
        # Requests read and not yet dispatched (past the bytes bound), in order, and
        # the bytes the dispatched answers not yet written are expected to take.
        self._held: deque[tuple[HttpRequest, Slot]] = deque()
        self._expected = 0
        self._reading = True
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        timeouts = (config.header_timeout_s, config.body_timeout_s, config.keepalive_timeout_s)
        # How often the one timer looks: a deadline is seen at most this late.
        self._tick = max(min(timeouts) / 4, 0.05)
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # ---- transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._endpoint.opened(self)
        if self._endpoint.closing:
            # Opened during the shutdown: its first request is the last one read,
            # answered ShuttingDown (see begin_shutdown).
            self._reader.closing = True
        self._arm()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader.stopped:
            return
        self._endpoint.counters.bytes_in += len(data)
        reader.feed(data)
        if reader.completed:
            self._held.extend(reader.completed)
            reader.completed = []
            self._admit()
        if reader.fatal is not None:
            self._fail(reader.fatal)
        self._flush()

    def eof_received(self) -> bool:
        # The client shut down its side: answer what it sent, then close.
        self._reader.closing = True
        self._reader.stop()
        self._flush()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        self._reader.stop()
        if self._timer is not None:
            self._timer.cancel()
        if self._stream is not None:
            self._stream.cancel()
        self._pending.clear()  # accepted work runs on; only its answer has nowhere to go
        self._held.clear()  # read, never run: no answer is owed to a closed connection
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._endpoint.closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._flush()

    # ---- requests ------------------------------------------------------------------

    def _continue(self) -> None:
        """A request asked for ``100 Continue``: now, or once the answers ahead are out."""
        if self._pending or self._reader.completed:
            self._continue_wanted = True
        elif self._transport is not None:
            self._transport.write(CONTINUE)

    def _admit(self) -> int:
        """Dispatch the requests read whose answers are expected to fit the bytes bound.

        An answer is expected to take what the last answer to its path took (a
        sixteenth of the bound for a path not answered yet). Requests past the bound
        wait, read and not yet run, and the connection stops reading
        (``docs/http.md``, "Bounds"); at least one runs while nothing is owed.
        """
        held = self._held
        endpoint = self._endpoint
        bound = endpoint.max_queued_bytes
        sizes = endpoint.answer_sizes
        first = bound >> 4
        expected = self._expected
        take = 0
        for _, slot in held:
            estimate = sizes.get(slot.path, first)
            if expected + estimate > bound and (take or self._pending):
                break
            slot.estimate = estimate
            expected += estimate
            take += 1
        if not take:
            return 0
        self._expected = expected
        if take == len(held):
            batch = list(held)
            held.clear()
        else:
            batch = [held.popleft() for _ in range(take)]
        self._dispatcher.dispatch(batch)
        return take

    def _fail(self, error: HttpError) -> None:
        """The byte stream cannot be read on: answer ``error`` after the rest, then close."""
        reader = self._reader
        reader.fatal = None
        reader.stop()
        reader.closing = True
        held = self._held
        if held:
            # Answered after the requests read before it, which still wait.
            slot = Slot(False, False, None)
            slot.error = error
            held.append((held[-1][0], slot))  # a slot with an error never runs its request
            return
        self._dispatcher.refuse(error)

    # ---- answering -------------------------------------------------------------

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        # Only a completed head unblocks anything; coalesce completions into one flush.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Encode every answer ready at the head of the order; write them with one call."""
        self._flush_scheduled = False
        transport = self._transport
        if transport is None or self._stream is not None or self._write_paused:
            return
        pending = self._pending
        answers = self._answers
        out = bytearray()
        close = False
        # Answers are encoded only while the client takes them: at most the bound
        # (less what the transport still holds) per pass, plus one answer.
        room = self._endpoint.max_queued_bytes - transport.get_write_buffer_size()
        full = False
        while pending:
            if out and len(out) >= room:
                full = True
                break
            slot = pending[0]
            before = len(out)
            fut = slot.fut
            if fut is not None:
                if not fut.done():
                    break
                resolve(slot, fut)
            value = slot.value
            if type(value) is HttpLines:
                waiting = answers.lines(slot, value, out)
                if waiting is not None:
                    waiting.add_done_callback(self._on_done)
                    break
            elif type(value) is HttpStream:
                answers.head(slot, value.status, value.content_type, None, value.headers, out)
                if slot.head:
                    _close_iterator(value.chunks)  # HEAD: the headers only, no body at all
                else:
                    self._start_stream(slot, value)
                    break
            else:
                answers.answer(slot, out)
            pending.popleft()
            self._learn(slot, len(out) - before)
            if not slot.keep_alive:
                close = True
                pending.clear()
                break
        if out:
            self._endpoint.counters.bytes_out += len(out)
            transport.write(out)
        if full and not self._write_paused and not self._flush_scheduled:
            # The kernel took it all: go on with the next answers on the next pass.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        reader = self._reader
        if close or (
            reader.closing
            and not pending
            and self._stream is None
            # A request being read when the shutdown began is read to its end.
            and (reader.stopped or reader.phase is Phase.IDLE)
        ):
            self._close()
            return
        if not pending and self._continue_wanted:
            self._continue_wanted = False
            transport.write(CONTINUE)
        admitted = bool(self._held) and not self._write_paused and self._admit() > 0
        if admitted and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        self._regulate()

    def _start_stream(self, slot: Slot, stream: HttpStream) -> None:
        self._stream = self._loop.create_task(self._pump(slot, stream))

    async def _pump(self, slot: Slot, stream: HttpStream) -> None:
        """Write a stream's chunks as they come; it holds the head of the order meanwhile."""
        chunks = stream.chunks
        ended = False
        try:
            async for chunk in chunks:
                transport = self._transport
                if transport is None:
                    return
                if chunk:
                    self._endpoint.counters.bytes_out += len(chunk) + 12
                    transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if self._write_paused:
                    await self._wait_writable()
            ended = True
        except ActorbusError as exc:
            # Headers are out: the error becomes the body's last line.
            if self._transport is not None:
                self._endpoint.count_error(exc)
                line = error_body(exc) + b"\n"
                self._transport.write(b"%x\r\n%s\r\n" % (len(line), line))
            ended = True
        finally:
            await _aclose(chunks)
            self._stream = None
            if self._transport is not None:
                self._transport.write(b"0\r\n\r\n")
                if self._pending and self._pending[0] is slot:
                    self._pending.popleft()
                if not slot.keep_alive or not ended:
                    self._close()
                else:
                    self._loop.call_soon(self._flush)

    def _learn(self, slot: Slot, size: int) -> None:
        """An answer left: what it was expected to take is free, and its size is learnt."""
        self._expected -= slot.estimate
        if slot.path:
            sizes = self._endpoint.answer_sizes
            if len(sizes) >= 4096 and slot.path not in sizes:
                sizes.clear()
            sizes[slot.path] = size

    async def _wait_writable(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
        await self._writable

    def _regulate(self) -> None:
        """Stop reading at the per-connection bound; read again once answers left."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        over = bool(self._held) or len(self._pending) >= self._endpoint.max_inflight
        if over and self._reading:
            self._reading = False
            transport.pause_reading()
        elif not over and not self._reading and not self._reader.closing:
            self._reading = True
            transport.resume_reading()

    def _close(self) -> None:
        self._reader.closing = True
        self._reader.stop()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    # ---- timeouts ----------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None and self._transport is not None:
            self._timer = self._loop.call_later(self._tick, self._check_timeout)

    def _timeout(self) -> float:
        config = self._endpoint.config
        phase = self._reader.phase
        if phase is Phase.HEADERS:
            return config.header_timeout_s
        if phase is Phase.BODY:
            return config.body_timeout_s
        return config.keepalive_timeout_s

    def _check_timeout(self) -> None:
        self._timer = None
        reader = self._reader
        if self._transport is None or reader.stopped:
            return
        phase = reader.phase
        waiting_on_us = phase is Phase.IDLE and (self._pending or self._stream is not None)
        left = reader.since + self._timeout() - self._loop.time()
        if waiting_on_us or left > 0:
            delay = self._tick if waiting_on_us else min(max(left, 0.05), self._tick)
            self._timer = self._loop.call_later(delay, self._check_timeout)
            return
        if phase is Phase.IDLE:
            self._close()  # an idle keep-alive connection: nothing to answer
            return
        which = "headers" if phase is Phase.HEADERS else "body"
        limit = self._timeout()
        message = f"the request {which} did not arrive within {limit:g}s"
        self._fail(HttpError(408, "RequestTimeout", message))
        self._flush()

    # ---- server control ------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Answer what was read, end a stream, then close; an idle connection closes now.

        A connection still answering goes on reading until one more request is
        complete: that request is answered ``503 ShuttingDown`` with ``Connection:
        close`` after the answers before it, and nothing after it is read. A client
        therefore learns why its request was refused instead of seeing the
        connection drop.
        """
        reader = self._reader
        reader.closing = True
        if self._stream is not None:
            self._stream.cancel()
        if not self._pending and reader.phase is Phase.IDLE:
            reader.stop()  # nothing read, nothing owed: close now
        self._flush()

    def abort(self) -> None:
        """Drop the connection without flushing (past the shutdown deadline)."""
        if self._transport is not None:
            self._transport.abort()


_closing: set[asyncio.Future[Any]] = set()  # iterators being closed, held until done


def _close_iterator(chunks: Any) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        fut = asyncio.ensure_future(aclose())
        _closing.add(fut)
        fut.add_done_callback(_closing.discard)


async def _aclose(chunks: Any) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
