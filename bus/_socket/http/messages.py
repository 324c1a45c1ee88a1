"""What a route handler gets and gives back: the request, a response, a stream, an error.

No IO here. A handler takes an :class:`HttpRequest` and returns an
:class:`HttpResponse`, an :class:`HttpStream` (a body written chunk by chunk as it
is produced), a plain value (encoded as JSON with the route's status), an awaitable
of any of these, or raises an ``ActorbusError`` (answered with its status and
``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, Final

import msgspec

from contracts import ActorbusError

__all__ = [
    "JSON",
    "NDJSON",
    "HttpError",
    "HttpLines",
    "HttpRequest",
    "HttpResponse",
    "HttpStream",
    "error_body",
    "json_response",
]

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"

_ENCODER = msgspec.json.Encoder()


class HttpError(ActorbusError):
    """An HTTP-level refusal: no route, a method not allowed, a body or header limit.

    Its ``code`` and ``status`` are the instance's own (the table is in
    ``docs/http.md``); ``headers`` go on the answer (``Allow`` for 405).
    """

    code: ClassVar[str] = "InvalidRequest"
    status: ClassVar[int] = 400

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        # Instance attributes shadow the class defaults: one class for every HTTP refusal.
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        self.headers = dict(headers or {})


class HttpRequest:
    """One request, read whole (headers and body), handed to its route's handler.

    Attributes:
        method: The method (``HEAD`` arrives as ``GET`` with ``head`` set).
        path: The path without the query string, percent-decoded.
        query: The query parameters (the last value of a repeated one).
        headers: Header values by lower-case name (repeated ones joined with ``, ``).
        body: The body, de-chunked.
        params: The path parameters the route's pattern named.
        head: Whether the client asked with ``HEAD`` (the body is not sent).
        tcp: Whether the request came over the TCP listener (else the Unix socket).
        sized: Whether it said how long its body is (``Content-Length`` or chunked).
    """

    __slots__ = ("body", "head", "headers", "method", "params", "path", "query", "sized", "tcp")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        *,
        tcp: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.params: dict[str, str] = {}
        self.head = False
        self.tcp = tcp
        self.sized = True

    def flag(self, name: str) -> bool:
        """A boolean query parameter: ``true``/``1``/``yes`` is true, absent is false.

        Raises:
            HttpError: The value is not a boolean (400 InvalidRequest).
        """
        value = self.query.get(name)
        if value is None:
            return False
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
        raise HttpError(400, "InvalidRequest", f"query parameter {name} must be true or false")


class HttpResponse:
    """A whole response: status, headers and body.

    Attributes:
        status: The status code.
        body: The body (sent as is; ``Content-Length`` is its length).
        content_type: The ``Content-Type`` (none when empty).
        headers: More headers, in order.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = JSON,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type if body or status != 204 else None
        self.headers = dict(headers or {})


class HttpStream:
    """A response whose body is written chunk by chunk, as ``chunks`` produces it.

    Sent with ``Transfer-Encoding: chunked``; the stream holds its place in the
    connection's order, and answers behind it wait until it ends. The iterator is
    closed when the client goes away or the service stops.

    Attributes:
        chunks: The body's pieces (an empty piece is skipped).
        status: The status code.
        content_type: The ``Content-Type``.
        headers: More headers.
    """

    __slots__ = ("chunks", "content_type", "headers", "status")

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status: int = 200,
        content_type: str = NDJSON,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.content_type = content_type
        self.headers = dict(headers or {})


class HttpLines:
    """A response of one line per outcome, in order, each written as soon as it is settled.

    For answers that arrive one by one (a bulk append's acknowledgements as each
    session's writer answers), without a task per response: the connection writes
    every settled line at the head, then waits for the next outcome.

    Attributes:
        outcomes: Values, ``ActorbusError`` instances, futures or parts (:class:`~bus.Part`).
        line: Renders one settled outcome (value or error) as its line, newline included.
        status: The status code.
        content_type: The ``Content-Type``.
    """

    __slots__ = ("content_type", "line", "outcomes", "status")

    def __init__(
        self,
        outcomes: list[Any],
        line: Callable[[Any, ActorbusError | None], bytes],
        status: int = 200,
        content_type: str = NDJSON,
    ) -> None:
        self.outcomes = outcomes
        self.line = line
        self.status = status
        self.content_type = content_type


def error_body(error: ActorbusError) -> bytes:
    """``{"error": {"code", "message"}}`` for ``error`` (its message is safe to show)."""
    return _ENCODER.encode({"error": {"code": error.code, "message": error.message}})


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """``value`` encoded as JSON (msgspec Structs included)."""
    return HttpResponse(status, _ENCODER.encode(value), JSON, headers)
