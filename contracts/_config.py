"""The service configuration (``actorbus serve --config FILE.toml``) as msgspec Structs.

Every key has a default, so an empty file (or none) is a valid configuration.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ._base import Base
from ._errors import InvalidRequest

__all__ = [
    "BusConfig",
    "Config",
    "EnrichmentConfig",
    "HttpConfig",
    "LiveDataConfig",
    "ProviderConfig",
    "RecorderConfig",
    "ScopeConfig",
    "ServerConfig",
    "load_config",
]


#: At least one: a bound of zero would make every send wait forever.
_Positive = Annotated[int, msgspec.Meta(ge=1)]
_Seconds = Annotated[float, msgspec.Meta(ge=0)]


class BusConfig(Base, frozen=True):
    """Runtime bounds shared by every actor."""

    mailbox_size: _Positive = 1024
    shutdown_deadline_s: _Seconds = 10.0
    keyed_idle_s: _Seconds = 30.0
    max_live_keyed: _Positive = 10_000


class RecorderConfig(Base, frozen=True):
    """Session recording: the size of one line and what an acknowledgement promises."""

    max_event_bytes: int = 262_144
    durability: Literal["none", "fsync"] = "none"
    batch_max_events: int = 512
    batch_max_bytes: int = 1_048_576


class ServerConfig(Base, frozen=True):
    """The Unix-socket endpoint.

    ``shutdown_deadline_s`` bounds how long a graceful shutdown waits for requests
    already read; past it they are answered ``ShuttingDown``.
    """

    max_frame_bytes: int = 1_048_576
    idle_timeout_s: float = 30.0
    allowed_uids: list[int] = msgspec.field(default_factory=list)
    max_inflight_per_connection: int = 1024
    max_inflight_total: int = 65_536
    shutdown_deadline_s: float = 10.0
    #: Bytes of answers one connection may hold (docs/protocol.md, "Bounds").
    max_queued_bytes_per_connection: Annotated[int, msgspec.Meta(ge=4096, le=1 << 40)] = 4 << 20
    #: Bytes of answers every connection together may hold.
    max_queued_bytes_total: Annotated[int, msgspec.Meta(ge=4096, le=1 << 40)] = 256 << 20


class HttpConfig(Base, frozen=True):
    """HTTP/1.1 beside the socket's own framings (``docs/http.md``).

    HTTP is always answered on the Unix socket; ``listen`` adds a TCP listener.

    Attributes:
        listen: ``"host:port"`` of a TCP listener (``"[::1]:8787"`` for IPv6), or
            ``None`` for the Unix socket only.
        allow_remote: Allow ``listen`` on an address that is not loopback.
        token_file: A file holding the bearer token that writes over TCP must send;
            without one every write over TCP is refused.
        allowed_hosts: ``Host`` names accepted beside localhost, 127.0.0.1 and [::1].
        cors_origins: Origins given CORS headers; none by default.
        header_timeout_s: A request's headers must arrive within this, from its first byte.
        body_timeout_s: A request's body must arrive within this, from its headers.
        max_header_bytes: The request line and headers together, at most.
        keepalive_timeout_s: An idle keep-alive connection is closed after this.
        max_runs: Enrichment reports kept in memory for ``GET /v1/enrich/runs``.
    """

    listen: str | None = None
    allow_remote: bool = False
    token_file: str | None = None
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    header_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_header_bytes: Annotated[int, msgspec.Meta(ge=256)] = 16_384
    keepalive_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_runs: Annotated[int, msgspec.Meta(ge=1)] = 32


class ScopeConfig(Base, frozen=True):
    """A live-data scope beside the defaults: the dotted branch paths it owns."""

    owns: list[str]


class LiveDataConfig(Base, frozen=True):
    """The generated live-data document and its lock."""

    lock_wait_s: float = 5.0
    lock_stale_s: float = 600.0
    scopes: dict[str, ScopeConfig] = msgspec.field(default_factory=dict)


class ProviderConfig(Base, frozen=True):
    """One enrichment source's provider.

    ``kind`` picks the implementation; the other keys apply to the kinds that use
    them (``url`` and ``headers`` for http, ``command`` for command, ``target`` as
    ``module:callable`` for python; ``usage``, ``latency_ms``, ``failure_rate`` and
    ``seed`` for the simulator).

    ``cost_usd`` is the estimated cost of enriching one item: ``0`` marks a free
    source, ``None`` (the default) an unknown cost, which a budgeted run cannot
    afford and whose spend is reported ``unavailable`` unless the provider reports
    actual usage.
    """

    kind: Literal["simulated", "http", "command", "python"] = "simulated"
    cost_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    usage: Literal["exact", "estimated"] = "estimated"
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 32
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    url: str | None = None
    command: list[str] | None = None
    target: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    seed: int = 0
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 4


class EnrichmentConfig(Base, frozen=True):
    """Enrichment providers by source id."""

    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=dict)
    max_summary_bytes: Annotated[int, msgspec.Meta(ge=1)] = 4096


class Config(Base, frozen=True):
    """The whole configuration file."""

    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    recorder: RecorderConfig = msgspec.field(default_factory=RecorderConfig)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    live_data: LiveDataConfig = msgspec.field(default_factory=LiveDataConfig)
    enrichment: EnrichmentConfig = msgspec.field(default_factory=EnrichmentConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)


def load_config(data: bytes | str | None) -> Config:
    """Decode a TOML configuration, raising :class:`InvalidRequest` on a bad key or value.

    Args:
        data: The TOML text, or ``None`` for the defaults.

    Returns:
        The validated configuration.
    """
    if data is None:
        return Config()
    try:
        return msgspec.toml.decode(data, type=Config)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"invalid configuration: {exc}") from None
