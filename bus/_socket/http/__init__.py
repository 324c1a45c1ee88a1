"""HTTP/1.1 on the service's socket and an optional TCP listener (``docs/http.md``).

The protocol maps requests to the handlers it is given: the routes that call the
recorder, live data and enrichment belong to the application. Parsing is llhttp's
(httptools), never by hand.
"""

from .endpoint import HttpEndpoint, HttpStatistics, is_http, parse_listen
from .messages import (
    JSON,
    NDJSON,
    HttpError,
    HttpLines,
    HttpRequest,
    HttpResponse,
    HttpStream,
    error_body,
    json_response,
)
from .protocol import HttpProtocol
from .routing import BatchRouteHandler, Route, RouteHandler, Router

__all__ = [
    "JSON",
    "NDJSON",
    "BatchRouteHandler",
    "HttpEndpoint",
    "HttpError",
    "HttpLines",
    "HttpProtocol",
    "HttpRequest",
    "HttpResponse",
    "HttpStatistics",
    "HttpStream",
    "Route",
    "RouteHandler",
    "Router",
    "error_body",
    "is_http",
    "json_response",
    "parse_listen",
]
