"""Request assembly: llhttp's callbacks turned into whole requests, within the limits.

A :class:`RequestReader` feeds a connection's bytes to the parser (httptools, the
llhttp binding) and collects every request a read completes, each with its
:class:`~.slots.Slot` in the answer order. It enforces the size limits
(``docs/http.md``): the request line and headers together at most
``max_header_bytes`` (431) and a body at most ``max_frame_bytes`` (413, said by
``Content-Length`` or counted as it arrives); either stops the parser, since the
stream cannot be resynchronised. The time limits are the connection's
(``protocol.py``): the reader only records the phase and when it began.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import unquote

import httptools

from .messages import HttpError, HttpRequest
from .slots import Slot

__all__ = ["Phase", "RequestReader", "body_too_large", "headers_too_large"]


class Phase(enum.Enum):
    """Where the parser is in the current request; the timeouts apply per phase."""

    IDLE = "idle"  # between requests: the keep-alive timeout applies when nothing is pending
    HEADERS = "headers"  # the request began: header_timeout_s from its first byte
    BODY = "body"  # headers complete: body_timeout_s from then


class _Stop(Exception):
    """Raised inside a parser callback to stop the parser; the reason is in ``fatal``."""


class RequestReader:
    """The parsing side of one HTTP/1.1 connection.

    Args:
        clock: The loop's clock (``loop.time``).
        tcp: Whether the connection came over the TCP listener.
        max_header: The limit on the request line and headers, in bytes.
        max_body: The limit on a body, in bytes.
        extra_headers: The headers every answer to a request carries (CORS), from its
            headers; ``None`` when no request gets any.
        on_continue: Called when a request asks for ``100 Continue``.

    Attributes:
        phase: Where the current request is.
        since: When that phase began (the clock's time).
        fatal: A limit or parse error, answered after what came before; then close.
        completed: Requests completed by the current read, not yet dispatched.
        closing: No request after the current one keeps the connection alive: the
            next one completed is the last read.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        tcp: bool,
        max_header: int,
        max_body: int,
        extra_headers: Callable[[dict[str, str]], dict[str, str] | None] | None,
        on_continue: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._tcp = tcp
        self._max_header = max_header
        self._max_body = max_body
        self._extra_headers = extra_headers
        self._on_continue = on_continue
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.phase = Phase.IDLE
        self.since = clock()
        self.fatal: HttpError | None = None
        self.completed: list[tuple[HttpRequest, Slot]] = []
        self.closing = False
        # The request being parsed. Only the parser's callbacks change these.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0  # bytes read since the request began (the limit on a read)
        self._header_size = 0  # the request line's target and headers, as parsed
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._sized = False  # the request said how long its body is (length or chunked)

    @property
    def stopped(self) -> bool:
        """Whether nothing more is read on this connection."""
        return self._parser is None

    def stop(self) -> None:
        """Read nothing more."""
        self._parser = None

    def feed(self, data: bytes) -> None:
        """Parse one read; completed requests go to ``completed``, a refusal to ``fatal``."""
        parser = self._parser
        if parser is None:
            return
        if self.phase is not Phase.BODY:
            self._header_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # no protocol switch: answer the request, then close
        except (_Stop, httptools.HttpParserCallbackError):
            # A callback stopped the parser: a limit (in fatal) or a request that
            # closes the connection (nothing after it is read).
            self._parser = None
        except httptools.HttpParserError:
            self.fatal = HttpError(400, "InvalidRequest", "the request is not valid HTTP/1.1")
        if (
            self.fatal is None
            and self.phase is Phase.HEADERS
            and self._header_bytes > self._max_header
        ):
            self.fatal = headers_too_large(self._max_header)

    # ---- parser callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.phase = Phase.HEADERS
        self.since = self._clock()
        self._url = b""
        self._headers = {}
        self._header_size = 0
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        headers = self._headers
        if self._header_size > self._max_header:
            self._stop(headers_too_large(self._max_header))
        self.phase = Phase.BODY
        self.since = self._clock()
        self._header_bytes = 0
        length = headers.get("content-length")
        coding = headers.get("transfer-encoding")
        chunked = coding is not None and "chunked" in coding.lower()
        self._sized = length is not None or chunked
        # llhttp has already refused a Content-Length that is not a number.
        if length is not None and not chunked and int(length) > self._max_body:
            self._stop(body_too_large(self._max_body))
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            self._on_continue()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            self._stop(body_too_large(self._max_body))
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self.phase = Phase.IDLE
        self.since = self._clock()
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        keep_alive = parser.should_keep_alive() and not self.closing
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._body = []
        url = self._url
        if url[:1] == b"/" and b"?" not in url and b"%" not in url and b"#" not in url:
            # A plain origin-form path (most requests): nothing to split or decode.
            path = url.decode("latin-1")
            query: dict[str, str] = {}
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._stop(
                    HttpError(400, "InvalidRequest", "the request target is not a valid URL")
                )
            path = unquote(parsed.path.decode("latin-1"))
            query = _query(parsed.query)
        headers = self._headers
        request = HttpRequest(method, path, query, headers, body, tcp=self._tcp)
        request.sized = self._sized
        if method == "HEAD":
            request.head = True
        extra = self._extra_headers
        slot = Slot(keep_alive, request.head, None if extra is None else extra(headers))
        slot.path = path
        self.completed.append((request, slot))
        if not keep_alive:
            # Nothing after a request that closes the connection is read.
            self.closing = True
            raise _Stop()  # stops the parser; caught in feed

    def _stop(self, error: HttpError) -> NoReturn:
        """Stop parsing: ``error`` is answered after the requests before it, then close."""
        self.fatal = error
        raise _Stop()


#: Methods as text, without decoding the common ones each time.
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")}
#: Header names as the lower-case text the request carries, for the common ones.
_NAMES = {
    spelled.encode(): spelled.lower()
    for name in (
        "Host",
        "Content-Type",
        "Content-Length",
        "Connection",
        "Accept",
        "User-Agent",
        "Accept-Encoding",
        "Transfer-Encoding",
        "Authorization",
        "Expect",
        "If-None-Match",
        "Origin",
    )
    for spelled in (name, name.lower())
}


def _query(raw: bytes | None) -> dict[str, str]:
    if not raw:
        return {}
    query: dict[str, str] = {}
    for pair in raw.decode("latin-1").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return query


def headers_too_large(limit: int) -> HttpError:
    """431: the request line and headers are over ``max_header_bytes``."""
    return HttpError(
        431, "HeadersTooLarge", f"the request line and headers exceed max_header_bytes ({limit})"
    )


def body_too_large(limit: int) -> HttpError:
    """413: the body is over ``max_frame_bytes``."""
    return HttpError(413, "FrameTooLarge", f"the body exceeds max_frame_bytes ({limit})")
