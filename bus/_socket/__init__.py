"""The socket transport: sans-IO framing, the server, its connections and the clients.

It sees the actor runtime only through the handlers and the bus it is given; see
``docs/architecture.md`` and ``docs/protocol.md``.
"""

from .client import DEFAULT_MAX_FRAME_BYTES, Client, ClientCodec
from .http import (
    HttpEndpoint,
    HttpError,
    HttpLines,
    HttpRequest,
    HttpResponse,
    HttpStatistics,
    HttpStream,
    Route,
)
from .ordering import Part
from .server import BatchHandler, Handler, Server, ServerStatistics, serve_unix
from .sync_client import SyncClient
from .wire import FrameReader, FrameWriter, Request, Result, parse_request

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "BatchHandler",
    "Client",
    "ClientCodec",
    "FrameReader",
    "FrameWriter",
    "Handler",
    "HttpEndpoint",
    "HttpError",
    "HttpLines",
    "HttpRequest",
    "HttpResponse",
    "HttpStatistics",
    "HttpStream",
    "Part",
    "Request",
    "Result",
    "Route",
    "Server",
    "ServerStatistics",
    "SyncClient",
    "parse_request",
    "serve_unix",
]
