"""Every HTTP route of one service, and the endpoint that serves them.

The routes map HTTP onto the service's ops (``actorbus/ops/``); the protocol
itself (parsing, order, limits, security checks) is ``bus``'s
:class:`~bus.HttpEndpoint`. See ``docs/http.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bus import HttpEndpoint, Route
from contracts import Config, InvalidRequest

from ..ops import ServiceOps
from .dashboard import DashboardRoutes, load_dashboard
from .data import DataRoutes
from .observe import ObserveRoutes
from .recording import recording_routes

__all__ = ["build_endpoint", "read_token", "service_routes"]


def service_routes(
    ops: ServiceOps,
    statistics: Callable[[], Any],
    state: Callable[[], str],
    dashboard: dict[str, tuple[bytes, str]],
) -> list[Route]:
    """The routes of ``docs/http.md`` over a service's ops."""
    return [
        *recording_routes(ops.session),
        *DataRoutes(ops.live, ops.enrichment).routes(),
        *ObserveRoutes(statistics, state).routes(),
        *DashboardRoutes(dashboard).routes(),
    ]


def read_token(path: str) -> bytes:
    """The bearer token in ``path`` (surrounding whitespace dropped); blocking.

    Raises:
        InvalidRequest: The file cannot be read or is empty. The message names the
            file, never its content.
    """
    try:
        token = Path(path).read_bytes().strip()
    except OSError as exc:
        raise InvalidRequest(f"cannot read [http] token_file {path}: {exc.strerror}") from None
    if not token:
        raise InvalidRequest(f"[http] token_file {path} is empty")
    return token


async def build_endpoint(
    ops: ServiceOps,
    config: Config,
    statistics: Callable[[], Any],
    state: Callable[[], str],
) -> HttpEndpoint:
    """The HTTP endpoint of a service (not yet listening on TCP).

    Raises:
        InvalidRequest: The token file cannot be read.
    """
    http = config.http
    token = None
    if http.token_file is not None:
        token = await anyio.to_thread.run_sync(read_token, http.token_file)
    dashboard = await anyio.to_thread.run_sync(load_dashboard)
    return HttpEndpoint(
        service_routes(ops, statistics, state, dashboard),
        http,
        max_body_bytes=config.server.max_frame_bytes,
        max_inflight=config.server.max_inflight_per_connection,
        max_queued_bytes=config.server.max_queued_bytes_per_connection,
        token=token,
    )
