"""The HTTP endpoint: the routes, the limits and the rules every connection shares.

One :class:`HttpEndpoint` serves HTTP on the Unix socket (the socket's server hands
it each connection whose first byte starts a method token, see :func:`is_http`)
and, optionally, on a TCP listener. It checks each request before its handler
runs: the ``Host`` header (DNS rebinding), the route, the bearer token for writes
over TCP, the body's media type. The security model is in ``docs/http.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable

import anyio
import msgspec

from contracts import ActorbusError, HttpConfig, InvalidRequest

from ..wire import is_http
from .messages import HttpError, HttpRequest, HttpResponse
from .ports import HttpCounters
from .protocol import HttpProtocol
from .routing import Route, Router

__all__ = ["HttpEndpoint", "HttpStatistics", "is_http", "parse_listen"]

log = logging.getLogger("actorbus.http")

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def parse_listen(address: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:8787"`` for IPv6) as host and port.

    Raises:
        InvalidRequest: The address is not ``host:port``.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidRequest("[http] listen must be host:port, e.g. 127.0.0.1:8787")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpStatistics(msgspec.Struct, frozen=True):
    """The endpoint's counters, reported under ``stats.http``.

    Attributes:
        connections: HTTP connections open now (Unix socket and TCP).
        connections_total: HTTP connections since start.
        requests: Requests read.
        bytes_in: Bytes read.
        bytes_out: Bytes written.
        errors: Error answers by code.
        listening: The TCP address served (``host:port``), or ``None``.
    """

    connections: int
    connections_total: int
    requests: int
    bytes_in: int
    bytes_out: int
    errors: dict[str, int]
    listening: str | None


class HttpEndpoint:
    """What every HTTP connection of one service shares.

    Args:
        routes: The routes it answers.
        config: The ``[http]`` configuration.
        max_body_bytes: The largest body (the socket's ``max_frame_bytes``).
        max_inflight: Requests read and not yet answered per connection before it
            stops reading.
        max_queued_bytes: Bytes of answers one connection may hold unsent; past it
            no more answers are encoded until the client reads.
        token: The bearer token writes over TCP must send; ``None``: writes over TCP
            are refused.

    Attributes:
        config: The ``[http]`` configuration.
        loop: The event loop it runs on.
        counters: Running totals.
        closing: Whether a shutdown has begun (new requests answer 503).
        listening: The TCP address served, once listening.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        config: HttpConfig,
        *,
        max_body_bytes: int,
        max_inflight: int = 1024,
        max_queued_bytes: int = 4 << 20,
        token: bytes | None = None,
    ) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.router = Router(routes)
        self.max_body_bytes = max_body_bytes
        self.max_inflight = max_inflight
        self.max_queued_bytes = max_queued_bytes
        #: The size the last answer to each path took (bounded: cleared when full),
        #: so that only the answers expected to fit the bound are produced.
        self.answer_sizes: dict[str, int] = {}
        self.counters = HttpCounters()
        self.closing = False
        self.listening: str | None = None
        self._token = token
        self._hosts = _LOCAL_HOSTS | {host.lower() for host in config.allowed_hosts}
        self._host_seen: dict[str, bool] = {}
        self._origins = frozenset(config.cors_origins)
        #: Whether any request may get CORS headers (an origin is configured).
        self.cors = bool(self._origins)
        self._connections: set[HttpProtocol] = set()
        self._listener: asyncio.AbstractServer | None = None

    # ---- connections ------------------------------------------------------------

    def hand_over(self, transport: asyncio.Transport, data: bytes) -> None:
        """Take a Unix-socket connection whose first read is ``data`` (see :func:`is_http`)."""
        protocol = HttpProtocol(self, tcp=False)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)

    async def listen_tcp(self, address: str, *, allow_remote: bool = False) -> str:
        """Listen on ``address`` (``host:port``; port 0 picks a free one); return what is bound.

        Raises:
            InvalidRequest: The address is not loopback and ``allow_remote`` is off,
                or it cannot be bound.
        """
        host, port = parse_listen(address)
        if not allow_remote and not _is_loopback(host):
            raise InvalidRequest(
                f"[http] listen on {host} is not a loopback address: set allow_remote = true "
                "to serve other machines (and configure token_file)"
            )
        try:
            self._listener = await self.loop.create_server(
                lambda: HttpProtocol(self, tcp=True), host, port, backlog=1024
            )
        except OSError as exc:
            raise InvalidRequest(f"cannot listen on {address}: {exc.strerror}") from None
        sockname = self._listener.sockets[0].getsockname()
        bound_host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        self.listening = f"{bound_host}:{sockname[1]}"
        log.info("HTTP listening on %s", self.listening)
        return self.listening

    def opened(self, protocol: HttpProtocol) -> None:
        """A connection started speaking HTTP (during a shutdown it reads one request)."""
        self._connections.add(protocol)
        self.counters.connections_total += 1

    def closed(self, protocol: HttpProtocol) -> None:
        """A connection is gone."""
        self._connections.discard(protocol)

    # ---- per request ----------------------------------------------------------------

    def admit(self, request: HttpRequest) -> Route:
        """The route that answers ``request``, once the request may have it.

        Raises:
            HttpError: A foreign ``Host`` (403), no route (404, 405), a write over TCP
                without the right token (403), a body of unknown length (411) or of
                the wrong type (415).
        """
        headers = request.headers
        host = headers.get("host")
        if host is None or not self._host_allowed(host):
            raise HttpError(
                403, "HostNotAllowed", "the Host header names no host this service answers as"
            )
        if request.method == "OPTIONS" and self._origins:
            return self._preflight(request)
        route, params = self.router.match(request.method, request.path)
        request.params = params
        if route.writes and request.tcp:
            self._check_token(headers.get("authorization"))
        if route.consumes:
            if not request.sized:
                raise HttpError(
                    411, "LengthRequired", "the body needs Content-Length or chunked encoding"
                )
            sent = headers.get("content-type", "")
            media = _MEDIA.get(sent)
            if media is None:
                media = sent.partition(";")[0].strip().lower()
            if media not in route.consumes:
                raise HttpError(
                    415, "UnsupportedMediaType", f"the body must be {' or '.join(route.consumes)}"
                )
        return route

    def _host_allowed(self, host: str) -> bool:
        """Whether a ``Host`` header names this service; the last answers are remembered."""
        known = self._host_seen.get(host)
        if known is None:
            known = _host_name(host) in self._hosts
            if len(self._host_seen) >= 64:
                self._host_seen.clear()  # client-chosen values: the memory stays bounded
            self._host_seen[host] = known
        return known

    def _check_token(self, authorization: str | None) -> None:
        token = self._token
        if token is None:
            raise HttpError(
                403, "Forbidden", "writes over TCP need a bearer token (set [http] token_file)"
            )
        scheme, _, sent = (authorization or "").partition(" ")
        # compare_digest takes as long whatever the bytes: the token cannot be guessed
        # by timing. Neither the token nor what was sent is ever logged.
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token):
            raise HttpError(403, "Forbidden", "the bearer token is missing or wrong")

    def cors_headers(self, headers: dict[str, str]) -> dict[str, str] | None:
        """CORS headers for a request from a configured origin; none otherwise."""
        origin = headers.get("origin")
        if origin is None or origin not in self._origins:
            return None
        return {"access-control-allow-origin": origin, "vary": "Origin"}

    def _preflight(self, request: HttpRequest) -> Route:
        if request.headers.get("origin") not in self._origins:
            raise HttpError(403, "Forbidden", "the origin is not configured in cors_origins")

        def answer(_: HttpRequest) -> HttpResponse:
            return HttpResponse(
                204,
                headers={
                    "access-control-allow-methods": "GET, HEAD, POST, PUT",
                    "access-control-allow-headers": "authorization, content-type, last-event-id",
                    "access-control-max-age": "600",
                },
            )

        return Route("OPTIONS", request.path, answer)

    def count_error(self, error: ActorbusError) -> None:
        """Count an error answer by its code."""
        errors = self.counters.errors
        errors[error.code] = errors.get(error.code, 0) + 1

    # ---- reporting and shutdown ---------------------------------------------------------

    def statistics(self) -> HttpStatistics:
        """A snapshot of the counters."""
        c = self.counters
        return HttpStatistics(
            connections=len(self._connections),
            connections_total=c.connections_total,
            requests=c.requests,
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
            errors=dict(c.errors),
            listening=self.listening,
        )

    async def aclose(self, deadline: float = 10.0) -> None:
        """Stop listening; answer what each connection read, end streams, close.

        New requests answer ``503 ShuttingDown``; past ``deadline`` seconds the
        connections still open are dropped.
        """
        self.closing = True
        if self._listener is not None:
            self._listener.close()
        for protocol in list(self._connections):
            protocol.begin_shutdown()
        with anyio.move_on_after(deadline):
            while self._connections:
                await asyncio.gather(*(p.closed for p in self._connections))
        for protocol in list(self._connections):
            protocol.abort()
        if self._listener is not None:
            with contextlib.suppress(Exception), anyio.move_on_after(1.0):
                await self._listener.wait_closed()

    def __repr__(self) -> str:
        return f"HttpEndpoint(listening={self.listening!r})"


#: Content types as their media type, for the common spellings.
_MEDIA = {
    t: t.partition(";")[0]
    for t in (
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/json; charset=utf-8",
    )
}


def _host_name(host: str) -> str:
    """The host of a ``Host`` header, lower-cased, without its port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]
