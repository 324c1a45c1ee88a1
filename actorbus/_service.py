"""The service: the root layout, the actors that own state, and the socket that reaches them.

Usage, embedded and listening at once::

    async with open_service(root, load_config(toml)) as service:
        await service.recorder.open_session("u1", "s1")      # in-process producers
        await service.recorder.append(event)
        await service.wait_for_signal()                      # socket producers meanwhile

Leaving the block shuts down in order: the server stops accepting and answers
every request it read, then the actors drain their mailboxes, then the bus closes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec

from actors import Enrichment, JetStream, JetStreamSessions, LiveData, Provider, Recorder
from bus import Bus, HttpEndpoint, Server, SocketInUse, open_bus, serve_unix
from contracts import Config, InvalidRequest, check_config

from ._layout import MAX_SOCKET_PATH_BYTES, default_socket, make_layout
from ._version import __version__
from .http import build_endpoint
from .ops import ServiceOps

__all__ = ["Service", "ServiceInfo", "open_service"]


class ServiceInfo(msgspec.Struct, frozen=True):
    """The service's own part of ``stats``.

    Attributes:
        version: The actorbus version.
        uptime_s: Seconds since the service started.
        listening: Whether it serves a socket (an embedded service may not).
    """

    version: str
    uptime_s: float
    listening: bool


class Service:
    """A running service: its actors, and its server when it listens.

    Create it with :func:`open_service`. The attributes are the same instances the
    socket ops use, so an embedded program and socket clients share one recorder
    (one writer per session), one live-data gate and one enrichment cache.

    Attributes:
        root: The service root.
        config: The configuration it runs with.
        socket_path: Where it listens (``None`` when it does not).
        bus: The actor runtime.
        recorder: Session recording.
        live: The live-data gate.
        enrichment: Cached enrichment.
        server: The socket server, ``None`` when not listening.
        http: The HTTP endpoint (on the socket, and on TCP when configured), ``None``
            when not listening.
        state: ``starting``, ``serving`` or ``draining`` (what ``/readyz`` reports).
    """

    def __init__(
        self,
        root: Path,
        config: Config,
        bus: Bus,
        recorder: Recorder,
        live: LiveData,
        enrichment: Enrichment,
        socket_path: Path | None,
    ) -> None:
        self.root = root
        self.config = config
        self.bus = bus
        self.recorder = recorder
        self.live = live
        self.enrichment = enrichment
        self.socket_path = socket_path
        self.server: Server | None = None
        self.http: HttpEndpoint | None = None
        self.state = "starting"
        # The ops the socket and HTTP share, once listening (their counters are in stats).
        self.ops: Any = None
        self._started = time.monotonic()

    def statistics(self) -> dict[str, Any]:
        """``stats``: ``{"server", "http", "bus", "service"}`` (no server or http if embedded)."""
        ops = self.ops
        return {
            "server": self.server.statistics() if self.server is not None else None,
            "http": self.http.statistics() if self.http is not None else None,
            "bus": self.bus.statistics(),
            "recording": {"recorded": ops.session.recorded if ops is not None else 0},
            "live": {"last_write": ops.live.last_write if ops is not None else None},
            "service": ServiceInfo(
                version=__version__,
                uptime_s=round(time.monotonic() - self._started, 3),
                listening=self.server is not None,
            ),
        }

    async def wait_for_signal(
        self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> signal.Signals:
        """Wait until the process receives one of ``signals``; return it.

        The caller then leaves the ``open_service`` block, which shuts down gracefully.
        """
        if self.server is not None:
            return await self.server.wait_for_signal(signals)
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                return signum
        raise RuntimeError("the signal receiver ended")  # pragma: no cover


@asynccontextmanager
async def open_service(
    root: str | os.PathLike[str],
    config: Config | None = None,
    socket_path: str | os.PathLike[str] | None = None,
    *,
    listen: bool = True,
    clock: Callable[[], datetime] | None = None,
    providers: Mapping[str, Provider] | None = None,
) -> AsyncIterator[Service]:
    """Run the service for the duration of the ``async with`` block.

    Args:
        root: The service root; its layout (``docs/runbook.md``) is created if missing.
        config: The configuration (defaults when omitted).
        socket_path: Where to listen (default ``<root>/run/actorbus.sock``).
        listen: Serve the socket; ``False`` runs the actors only (embedded use).
        clock: The recorder's UTC clock for ``recorded_at`` (default: the system's).
        providers: Enrichment providers by source id, beside the configured ones.

    Yields:
        The running service.

    Raises:
        ConfigError: A configuration key is outside its range (``docs/configuration.md``).
        InvalidRequest: The configuration is unusable (overlapping scopes, a provider
            that cannot be built), the socket path is too long, or the layout cannot
            be created.
        SocketInUse: A live server already listens on the socket path; the message
            says how to go on.
    """
    root = Path(root)
    config = check_config(config or Config())
    path = Path(socket_path) if socket_path is not None else default_socket(root)
    if listen and len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise InvalidRequest(
            f"the socket path is {len(os.fsencode(path))} bytes, over the "
            f"{MAX_SOCKET_PATH_BYTES} a Unix socket allows: choose a shorter --socket"
        )
    await anyio.to_thread.run_sync(make_layout, root)
    try:
        async with _running(root, config, path, listen, clock, providers) as service:
            yield service
    except SocketInUse as exc:
        raise SocketInUse(
            f"{exc.message}: stop that service first (SIGTERM to its pid, printed when it "
            "started), or give this one another root or socket_path"
        ) from None


@asynccontextmanager
async def _running(
    root: Path,
    config: Config,
    path: Path,
    listen: bool,
    clock: Callable[[], datetime] | None,
    providers: Mapping[str, Provider] | None,
) -> AsyncIterator[Service]:
    """The service of :func:`open_service`, once its configuration and layout are checked."""
    # JetStream is reached before any actor is built, and closed after they drained.
    jetstream: JetStream | None = None
    sessions: JetStreamSessions | None = None
    if config.storage.backend == "jetstream":
        jetstream = await JetStream.connect(config.storage.jetstream)
    try:
        async with open_bus(config.bus) as bus:
            if jetstream is not None:
                sessions = await JetStreamSessions.open(jetstream)
            recorder = Recorder(bus, root, config.recorder, clock, backend=sessions)
            live = LiveData(bus, root, config.live_data)
            enrichment = Enrichment(bus, root, config.enrichment, providers)
            service = Service(
                root, config, bus, recorder, live, enrichment, path if listen else None
            )
            if not listen:
                yield service
                return
            ops = service.ops = ServiceOps(
                service.recorder,
                service.live,
                service.enrichment,
                service.statistics,
                config.http.max_runs,
            )
            http = service.http = await build_endpoint(
                ops, config, service.statistics, lambda: service.state
            )
            try:
                if config.http.listen is not None:
                    # Before the socket: a refused address stops the start, nothing served.
                    await http.listen_tcp(config.http.listen, allow_remote=config.http.allow_remote)
                async with serve_unix(
                    path,
                    ops.handlers(),
                    config.server,
                    bus=bus,
                    statuses=ops.statuses(),
                    batch_handlers=ops.batch_handlers(),
                    hand_over=http.hand_over,
                ) as server:
                    service.server = server
                    service.state = "serving"
                    try:
                        yield service
                    finally:
                        service.state = "draining"
                        # HTTP first, while the socket's own connections are still served.
                        with anyio.CancelScope(shield=True):
                            await http.aclose(config.server.shutdown_deadline_s)
            finally:
                with anyio.CancelScope(shield=True):
                    await http.aclose(config.server.shutdown_deadline_s)
    except ExceptionGroup as group:
        # The bus's task group wraps what its body raised; one error reads better bare.
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], ExceptionGroup):
            raise group.exceptions[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True):
            if sessions is not None:
                await sessions.aclose()
            if jetstream is not None:
                await jetstream.aclose()
