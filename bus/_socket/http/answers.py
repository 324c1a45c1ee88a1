"""Response writing: status lines, headers and bodies encoded into one output buffer.

No IO here. The connection (``protocol.py``) takes every answer ready at the head
of its order, encodes them with an :class:`AnswerWriter` into one buffer, and
writes that buffer with one call. An :class:`~.messages.HttpLines` answer is
chunked: each call writes the lines settled so far as one chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import msgspec

from contracts import ActorbusError

from ..ordering import Part
from .messages import JSON, HttpError, HttpLines, HttpResponse, error_body
from .slots import Slot, error_of

__all__ = ["CONTINUE", "AnswerWriter"]

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
#: The interim answer to ``Expect: 100-continue``.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Heads:
    """Status line, ``Date`` and ``Content-Type`` of each kind of answer, built once a second."""

    second = -1
    built: dict[tuple[int, str | None], bytes] = {}

    @classmethod
    def get(cls, status: int, content_type: str | None) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second = second
            cls.built = {}
        key = (status, content_type)
        head = cls.built.get(key)
        if head is None:
            date = formatdate(second, usegmt=True).encode()
            reason = _REASONS.get(status, "Unknown").encode()
            head = b"HTTP/1.1 %d %s\r\ndate: %s\r\n" % (status, reason, date)
            if content_type is not None and status != 304:
                head += b"content-type: %s\r\n" % content_type.encode()
            if len(cls.built) < 64:  # the kinds are the code's own; the bound is a guard
                cls.built[key] = head
        return head


class AnswerWriter:
    """Encodes one connection's answers; remembers how far the lines at the head got.

    Args:
        count_error: Called with every error answered.
    """

    def __init__(self, count_error: Callable[[ActorbusError], None]) -> None:
        self._count_error = count_error
        self._lines = 0  # lines of the HttpLines at the head already written
        self._lines_started = False  # its status line and headers are written

    def answer(self, slot: Slot, out: bytearray) -> None:
        """A ready slot's whole answer: its error, its response or its value as JSON."""
        error = slot.error
        if error is not None:
            self._count_error(error)
            headers = error.headers if isinstance(error, HttpError) else None
            self.head(slot, error.status, JSON, error_body(error), headers, out)
            return
        value = slot.value
        if type(value) is not HttpResponse:
            route = slot.route
            body = _ENCODER.encode(value)
            self.head(slot, route.status if route else 200, JSON, body, None, out)
            return
        self.head(slot, value.status, value.content_type, value.body, value.headers, out)

    def head(
        self,
        slot: Slot,
        status: int,
        content_type: str | None,
        body: bytes | None,
        headers: dict[str, str] | None,
        out: bytearray,
    ) -> None:
        """Status line and headers, then ``body``; ``None`` means a chunked body follows."""
        out += _Heads.get(status, content_type)
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

    def lines(self, slot: Slot, lines: HttpLines, out: bytearray) -> asyncio.Future[Any] | None:
        """Write the settled lines at the head of ``lines`` as one chunk.

        Returns:
            ``None`` once every line (and the last chunk) is written; else the future
            of the first line not settled yet.
        """
        outcomes = lines.outcomes
        if not self._lines_started:
            self._lines_started = True
            self.head(slot, lines.status, lines.content_type, None, None, out)
            if slot.head:
                self._lines_started = False
                return None
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
                    out += render(None, error_of(fut))
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
                    out += render(None, error_of(outcome))
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
            pending: asyncio.Future[Any] = waiting.fut if type(waiting) is Part else waiting
            return pending
        out += b"0\r\n\r\n"
        self._lines = 0
        self._lines_started = False
        return None
