"""One HTTP/1.1 connection: requests parsed by llhttp, answered in order, within bounds.

The protocol is an asyncio protocol, like the socket's own connections: each read
is fed to the parser (httptools, the llhttp binding), every request it completes
is dispatched at once, consecutive requests of a route with a batch form go to it
together, and the answers that are ready are encoded into one buffer and written
with one call. Answers leave strictly in request order (pipelining); a streamed
answer holds the head until it ends.

Limits (``docs/http.md``): the request line and headers together at most
``max_header_bytes`` (431), a body at most ``max_frame_bytes`` (413, then close),
headers within ``header_timeout_s`` of the request's first byte and the body within
``body_timeout_s`` of the headers (408, then close), an idle keep-alive connection
closed after ``keepalive_timeout_s``. A request the parser cannot read is 400 and
ends the connection: the stream cannot be resynchronised.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import unquote

import httptools
import msgspec

from contracts import ActorbusError, ShuttingDown

from ..ordering import Part, internal_error
from .messages import (
    JSON,
    HttpError,
    HttpLines,
    HttpRequest,
    HttpResponse,
    HttpStream,
    error_body,
)
from .routing import Route

if TYPE_CHECKING:
    from .endpoint import HttpEndpoint

__all__ = ["HttpProtocol"]

log = logging.getLogger("actorbus.http")

_ENCODER = msgspec.json.Encoder()
_REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    422: "Unprocessable Content",
    423: "Locked",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Phase(enum.Enum):
    """Where the parser is in the current request; the timeouts apply per phase."""

    IDLE = "idle"  # between requests: the keep-alive timeout applies when nothing is pending
    HEADERS = "headers"  # the request began: header_timeout_s from its first byte
    BODY = "body"  # headers complete: body_timeout_s from then


class _Date:
    """The ``Date`` header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second = second
            cls.value = formatdate(second, usegmt=True).encode()
        return cls.value


class _Slot:
    """One request's place in the answer order.

    Ready when ``fut`` is ``None`` (``value`` or ``error`` set) or done; ``index`` is
    not negative when ``fut`` is a reply shared by several requests.
    """

    __slots__ = ("error", "extra", "fut", "head", "index", "keep_alive", "route", "value")

    def __init__(self, keep_alive: bool, head: bool, extra: dict[str, str] | None) -> None:
        self.keep_alive = keep_alive
        self.head = head
        self.extra = extra  # headers every answer to this request carries (CORS)
        self.route: Route | None = None
        self.value: Any = None
        self.error: ActorbusError | None = None
        self.fut: asyncio.Future[Any] | None = None
        self.index = -1


class HttpProtocol(asyncio.Protocol):
    """The server side of one HTTP/1.1 connection.

    Args:
        endpoint: The shared state: routes, limits, token, counters.
        tcp: Whether the connection came over the TCP listener.
    """

    def __init__(self, endpoint: HttpEndpoint, *, tcp: bool) -> None:
        self._endpoint = endpoint
        self._loop = endpoint.loop
        self._tcp = tcp
        config = endpoint.config
        self._max_header = config.max_header_bytes
        self._max_body = endpoint.max_body_bytes
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        # The request being parsed. Only the parser's callbacks change these.
        self._phase = Phase.IDLE
        self._since = self._loop.time()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._sized = False  # the request said how long its body is (length or chunked)
        self._fatal: HttpError | None = None  # answered after what came before; then close
        # Requests completed by the current read, dispatched once the read is parsed.
        self._completed: list[tuple[HttpRequest, _Slot]] = []
        # Answers in request order: appended by dispatch, popped from the head by _flush.
        self._pending: deque[_Slot] = deque()
        self._continue_wanted = False  # a 100 Continue owed once the answers ahead are out
        self._stream: asyncio.Task[None] | None = None  # the streamed answer at the head
        self._lines = 0  # lines of the HttpLines at the head already written
        self._lines_started = False  # its status line and headers are written
        self._reading = True
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._closing = False  # no more requests are read; close once the answers are out
        self._flush_scheduled = False
        self._watched: asyncio.Future[Any] | None = None  # the last future given _on_done
        self._timer: asyncio.TimerHandle | None = None
        timeouts = (config.header_timeout_s, config.body_timeout_s, config.keepalive_timeout_s)
        # How often the one timer looks: a deadline is seen at most this late.
        self._tick = max(min(timeouts) / 4, 0.05)
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # ---- transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._endpoint.opened(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return
        self._endpoint.counters.bytes_in += len(data)
        if self._phase is not Phase.BODY:
            self._header_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._closing = True  # no protocol switch: answer the request, then close
        except (_Stop, httptools.HttpParserCallbackError):
            # A callback stopped the parser: a limit (in _fatal) or a request that
            # closes the connection (nothing after it is read).
            self._parser = None
        except httptools.HttpParserError:
            self._fatal = HttpError(400, "InvalidRequest", "the request is not valid HTTP/1.1")
        if (
            self._fatal is None
            and self._phase is Phase.HEADERS
            and self._header_bytes > self._max_header
        ):
            self._fatal = _headers_too_large(self._max_header)
        if self._completed:
            self._dispatch()
        if self._fatal is not None:
            self._fail(self._fatal)
        self._flush()

    def eof_received(self) -> bool:
        # The client shut down its side: answer what it sent, then close.
        self._closing = True
        self._parser = None
        self._flush()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        self._parser = None
        if self._timer is not None:
            self._timer.cancel()
        if self._stream is not None:
            self._stream.cancel()
        self._pending.clear()  # accepted work runs on; only its answer has nowhere to go
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

    # ---- parser callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._phase = Phase.HEADERS
        self._since = self._loop.time()
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        headers = self._headers
        size = len(self._url) + sum(len(k) + len(v) + 4 for k, v in headers.items())
        if size > self._max_header:
            self._stop(_headers_too_large(self._max_header))
        self._phase = Phase.BODY
        self._since = self._loop.time()
        self._header_bytes = 0
        parser = self._parser
        assert parser is not None
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._sized = length is not None or chunked
        # llhttp has already refused a Content-Length that is not a number.
        if length is not None and not chunked and int(length) > self._max_body:
            self._stop(_body_too_large(self._max_body))
        if headers.get("expect", "").lower() == "100-continue":
            if self._pending or self._completed:
                self._continue_wanted = True
            elif self._transport is not None:
                self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            self._stop(_body_too_large(self._max_body))
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self._phase = Phase.IDLE
        self._since = self._loop.time()
        method = parser.get_method().decode("ascii")
        keep_alive = parser.should_keep_alive() and not self._closing
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        try:
            parsed = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._stop(HttpError(400, "InvalidRequest", "the request target is not a valid URL"))
        path = unquote(parsed.path.decode("latin-1"))
        query = _query(parsed.query)
        request = HttpRequest(method, path, query, self._headers, body, tcp=self._tcp)
        request.sized = self._sized
        if method == "HEAD":
            request.head = True
        slot = _Slot(keep_alive, request.head, self._endpoint.cors_headers(self._headers))
        self._completed.append((request, slot))
        if not keep_alive:
            # Nothing after a request that closes the connection is read.
            self._closing = True
            raise _Stop()  # stops the parser; caught in data_received

    def _stop(self, error: HttpError) -> NoReturn:
        """Stop parsing: ``error`` is answered after the requests before it, then close."""
        self._fatal = error
        raise _Stop()

    # ---- dispatch ----------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand the requests of one read to their routes; runs of a batch form go together."""
        completed = self._completed
        self._completed = []
        admit = self._endpoint.admit
        routes: list[Route | None] = []
        for request, slot in completed:
            route = None
            if slot.error is None:
                try:
                    route = admit(request)
                except ActorbusError as exc:
                    slot.error = exc
            routes.append(route)
        count = len(completed)
        start = 0
        while start < count:
            route = routes[start]
            stop = start + 1
            if route is not None and route.many is not None:
                while stop < count and routes[stop] is route:
                    stop += 1
            if stop - start > 1:
                assert route is not None
                self._accept_many(completed[start:stop], route)
            else:
                request, slot = completed[start]
                self._accept(request, slot, route)
            start = stop

    def _accept(self, request: HttpRequest, slot: _Slot, route: Route | None) -> None:
        endpoint = self._endpoint
        endpoint.counters.requests += 1
        slot.route = route
        if route is not None and slot.error is None:
            if endpoint.closing:
                slot.error = ShuttingDown("the service is shutting down")
            else:
                try:
                    self._settle(slot, route.handler(request))
                except ActorbusError as exc:
                    slot.error = exc
                except Exception as exc:
                    slot.error = internal_error(exc, f"{route.method} {route.pattern}")
        self._pending.append(slot)

    def _accept_many(self, run: list[tuple[HttpRequest, _Slot]], route: Route) -> None:
        endpoint = self._endpoint
        endpoint.counters.requests += len(run)
        many = route.many
        assert many is not None
        try:
            if endpoint.closing:
                raise ShuttingDown("the service is shutting down")
            outs = many([request for request, _ in run])
            if len(outs) != len(run):
                raise RuntimeError(f"answered {len(outs)} of {len(run)} requests")
        except ActorbusError as exc:
            outs = [exc] * len(run)
        except Exception as exc:
            outs = [internal_error(exc, f"{route.method} {route.pattern}")] * len(run)
        pending = self._pending
        for (_, slot), out in zip(run, outs, strict=True):
            slot.route = route
            self._settle(slot, out)
            pending.append(slot)

    def _settle(self, slot: _Slot, out: Any) -> None:
        """Place a handler's outcome in its slot: ready now, or a future to wait for."""
        kind = type(out)
        if kind is Part:
            slot.fut = out.fut
            slot.index = out.index
        elif isinstance(out, ActorbusError):
            slot.error = out
        elif isinstance(out, asyncio.Future):
            slot.fut = out
        elif hasattr(out, "__await__"):
            slot.fut = asyncio.ensure_future(out)
        else:
            slot.value = out
            return
        fut = slot.fut
        if fut is not None and fut is not self._watched and not fut.done():
            # Requests sharing one reply need one callback, not one each.
            self._watched = fut
            fut.add_done_callback(self._on_done)

    def _fail(self, error: HttpError) -> None:
        """The byte stream cannot be read on: answer ``error`` after the rest, then close."""
        self._fatal = None
        self._parser = None
        self._closing = True
        slot = _Slot(False, False, None)
        slot.error = error
        self._endpoint.counters.requests += 1
        self._pending.append(slot)

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
        out = bytearray()
        close = False
        while pending:
            slot = pending[0]
            fut = slot.fut
            if fut is not None:
                if not fut.done():
                    break
                _resolve(slot, fut)
            value = slot.value
            if type(value) is HttpLines:
                if not self._write_lines(slot, value, out):
                    break
            elif type(value) is HttpStream:
                self._encode_head(slot, value.status, value.content_type, None, value.headers, out)
                if slot.head:
                    _close_iterator(value.chunks)  # HEAD: the headers only, no body at all
                else:
                    self._start_stream(slot, value)
                    break
            else:
                self._encode(slot, out)
            pending.popleft()
            if not slot.keep_alive:
                close = True
                pending.clear()
                break
        if out:
            self._endpoint.counters.bytes_out += len(out)
            transport.write(out)
        if close or (self._closing and not pending and self._stream is None):
            self._close()
            return
        if not pending and self._continue_wanted:
            self._continue_wanted = False
            transport.write(_CONTINUE)
        self._regulate()

    def _encode(self, slot: _Slot, out: bytearray) -> None:
        error = slot.error
        if error is not None:
            self._endpoint.count_error(error)
            headers = error.headers if isinstance(error, HttpError) else None
            self._encode_head(slot, error.status, JSON, error_body(error), headers, out)
            return
        value = slot.value
        if type(value) is not HttpResponse:
            route = slot.route
            body = _ENCODER.encode(value)
            self._encode_head(slot, route.status if route else 200, JSON, body, None, out)
            return
        self._encode_head(slot, value.status, value.content_type, value.body, value.headers, out)

    def _encode_head(
        self,
        slot: _Slot,
        status: int,
        content_type: str | None,
        body: bytes | None,
        headers: dict[str, str] | None,
        out: bytearray,
    ) -> None:
        """Status line and headers, then ``body``; ``None`` means a chunked body follows."""
        out += b"HTTP/1.1 %d %s\r\ndate: %s\r\n" % (
            status,
            _REASONS.get(status, "Unknown").encode(),
            _Date.now(),
        )
        if content_type is not None and status != 304:
            out += b"content-type: %s\r\n" % content_type.encode()
        if body is None:
            out += b"transfer-encoding: chunked\r\n"
        elif status != 304:
            out += b"content-length: %d\r\n" % len(body)
        if headers:
            for name, value in headers.items():
                out += f"{name}: {value}\r\n".encode("latin-1")
        if slot.extra:
            for name, value in slot.extra.items():
                out += f"{name}: {value}\r\n".encode("latin-1")
        if not slot.keep_alive:
            out += b"connection: close\r\n"
        out += b"\r\n"
        if body and not slot.head and status != 304:
            out += body

    def _write_lines(self, slot: _Slot, lines: HttpLines, out: bytearray) -> bool:
        """Write the settled lines at the head of ``lines``; True once all are written."""
        outcomes = lines.outcomes
        if not self._lines_started:
            self._lines_started = True
            self._encode_head(slot, lines.status, lines.content_type, None, None, out)
            if slot.head:
                self._lines_started = False
                return True
        start = len(out)
        out += b"00000000\r\n"  # a chunk size, filled in below
        body_start = len(out)
        render = lines.line
        count = len(outcomes)
        index = self._lines
        while index < count:
            outcome = outcomes[index]
            kind = type(outcome)
            if kind is Part:
                fut = outcome.fut
                if not fut.done():
                    break
                if fut.cancelled() or fut.exception() is not None:
                    out += render(None, _error_of(fut))
                else:
                    item = fut.result()[outcome.index]
                    if isinstance(item, ActorbusError):
                        out += render(None, item)
                    else:
                        out += render(item, None)
            elif isinstance(outcome, ActorbusError):
                out += render(None, outcome)
            elif isinstance(outcome, asyncio.Future):
                if not outcome.done():
                    break
                if outcome.cancelled() or outcome.exception() is not None:
                    out += render(None, _error_of(outcome))
                else:
                    out += render(outcome.result(), None)
            else:
                out += render(outcome, None)
            index += 1
        size = len(out) - body_start
        if size:
            out[start : start + 8] = b"%08x" % size
            out += b"\r\n"
        else:
            del out[start:]
        self._lines = index
        if index < count:
            waiting = outcomes[index]
            fut = waiting.fut if type(waiting) is Part else waiting
            fut.add_done_callback(self._on_done)
            return False
        out += b"0\r\n\r\n"
        self._lines = 0
        self._lines_started = False
        return True

    def _start_stream(self, slot: _Slot, stream: HttpStream) -> None:
        self._stream = self._loop.create_task(self._pump(slot, stream))

    async def _pump(self, slot: _Slot, stream: HttpStream) -> None:
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

    async def _wait_writable(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
        await self._writable

    def _regulate(self) -> None:
        """Stop reading at the per-connection bound; read again once answers left."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        over = len(self._pending) >= self._endpoint.max_inflight
        if over and self._reading:
            self._reading = False
            transport.pause_reading()
        elif not over and not self._reading and not self._closing:
            self._reading = True
            transport.resume_reading()

    def _close(self) -> None:
        self._closing = True
        self._parser = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    # ---- timeouts ----------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None and self._transport is not None:
            self._timer = self._loop.call_later(self._tick, self._check_timeout)

    def _timeout(self) -> float:
        config = self._endpoint.config
        if self._phase is Phase.HEADERS:
            return config.header_timeout_s
        if self._phase is Phase.BODY:
            return config.body_timeout_s
        return config.keepalive_timeout_s

    def _check_timeout(self) -> None:
        self._timer = None
        if self._transport is None or self._parser is None:
            return
        phase = self._phase
        waiting_on_us = phase is Phase.IDLE and (self._pending or self._stream is not None)
        left = self._since + self._timeout() - self._loop.time()
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
        """Answer what was read, end a stream, then close; an idle connection closes now."""
        self._closing = True
        self._parser = None
        if self._stream is not None:
            self._stream.cancel()
        self._flush()

    def abort(self) -> None:
        """Drop the connection without flushing (past the shutdown deadline)."""
        if self._transport is not None:
            self._transport.abort()


class _Stop(Exception):
    """Raised inside a parser callback to stop the parser; the reason is in ``_fatal``."""


def _resolve(slot: _Slot, fut: asyncio.Future[Any]) -> None:
    """Move a completed future's outcome into its slot."""
    slot.fut = None
    if fut.cancelled() or fut.exception() is not None:
        slot.error = _error_of(fut)
        return
    result = fut.result()
    if slot.index >= 0:
        result = result[slot.index]
        if isinstance(result, ActorbusError):
            slot.error = result
            return
    slot.value = result


def _error_of(fut: asyncio.Future[Any]) -> ActorbusError:
    if fut.cancelled():
        return ShuttingDown("the request was cancelled by the shutdown")
    exc = fut.exception()
    if isinstance(exc, ActorbusError):
        return exc
    assert exc is not None
    return internal_error(exc, "http")


def _query(raw: bytes | None) -> dict[str, str]:
    if not raw:
        return {}
    query: dict[str, str] = {}
    for pair in raw.decode("latin-1").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return query


def _headers_too_large(limit: int) -> HttpError:
    return HttpError(
        431, "HeadersTooLarge", f"the request line and headers exceed max_header_bytes ({limit})"
    )


def _body_too_large(limit: int) -> HttpError:
    return HttpError(413, "FrameTooLarge", f"the body exceeds max_frame_bytes ({limit})")


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
