"""The service configuration (``actorbus serve --config FILE.toml``) as msgspec Structs.

Every key has a default, so an empty file (or none) is a valid configuration.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import re
import tomllib
from typing import Annotated, Any, Literal

import msgspec

from ._base import Base
from ._errors import InvalidRequest

__all__ = [
    "BusConfig",
    "Config",
    "ConfigError",
    "EnrichmentConfig",
    "HttpConfig",
    "JetStreamConfig",
    "LiveDataConfig",
    "ProviderConfig",
    "RecorderConfig",
    "ScopeConfig",
    "ServerConfig",
    "StorageConfig",
    "allowed_range",
    "check_config",
    "load_config",
]


KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
#: The longest time any bound may state: a day. Longer is a typo (ms for s) and would
#: overflow the loop's timers.
DAY_S = 86_400.0

#: The most one item may cost: the bound every spend figure is computed within.
MAX_ITEM_COST_USD = 1e12


class BusConfig(Base, frozen=True):
    """Runtime bounds shared by every actor."""

    mailbox_size: Annotated[int, msgspec.Meta(ge=1, le=1_048_576)] = 1024
    shutdown_deadline_s: Annotated[float, msgspec.Meta(ge=0, le=DAY_S)] = 10.0
    keyed_idle_s: Annotated[float, msgspec.Meta(ge=0, le=DAY_S)] = 30.0
    max_live_keyed: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 10_000


class RecorderConfig(Base, frozen=True):
    """Session recording: the size of one line and what an acknowledgement promises."""

    max_event_bytes: Annotated[int, msgspec.Meta(ge=128, le=64 * MiB)] = 262_144
    durability: Literal["none", "fsync"] = "none"
    batch_max_events: Annotated[int, msgspec.Meta(ge=1, le=65_536)] = 512
    batch_max_bytes: Annotated[int, msgspec.Meta(ge=1 * KiB, le=1 * GiB)] = 1_048_576


class ServerConfig(Base, frozen=True):
    """The Unix-socket endpoint.

    ``shutdown_deadline_s`` bounds how long a graceful shutdown waits for requests
    already read; past it they are answered ``ShuttingDown``.
    """

    max_frame_bytes: Annotated[int, msgspec.Meta(ge=256, le=1 * GiB)] = 1_048_576
    idle_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0
    allowed_uids: list[Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]] = msgspec.field(
        default_factory=list
    )
    max_inflight_per_connection: Annotated[int, msgspec.Meta(ge=1, le=1_048_576)] = 1024
    max_inflight_total: Annotated[int, msgspec.Meta(ge=1, le=16_777_216)] = 65_536
    shutdown_deadline_s: Annotated[float, msgspec.Meta(ge=0, le=DAY_S)] = 10.0
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
    header_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 10.0
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0
    max_header_bytes: Annotated[int, msgspec.Meta(ge=256, le=1 * MiB)] = 16_384
    keepalive_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0
    max_runs: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 32


class JetStreamConfig(Base, frozen=True):
    """Where and how a JetStream-backed service stores its state (``docs/scale-out.md``).

    Attributes:
        servers: NATS server URLs (``nats://host:port``); any one of a cluster will do.
        credentials_file: A NATS credentials file (``.creds``), or ``None``.
        partitions: How many streams hold session logs; fixed forever once created.
        replicas: Copies JetStream keeps of every stream and bucket (1, or 3 on a cluster).
        publish_timeout_s: How long one publish waits for JetStream's acknowledgement.
        retry_deadline_s: How long an append whose outcome is unknown is retried
            (with the same message id) before it fails as possibly recorded.
        duplicate_window_s: How long JetStream remembers message ids (retries must
            fall within it).
        max_inflight: Publishes awaiting an acknowledgement, at most, per service.
        connect_timeout_s: How long the service tries to reach a server at start.
    """

    servers: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    credentials_file: str | None = None
    partitions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 8
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    publish_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 2.0
    retry_deadline_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0
    duplicate_window_s: Annotated[float, msgspec.Meta(ge=1, le=7 * DAY_S)] = 120.0
    max_inflight: Annotated[int, msgspec.Meta(ge=1, le=1_048_576)] = 4096
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 5.0

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("servers must name at least one NATS server")
        if self.retry_deadline_s >= self.duplicate_window_s:
            # A retry past the window could be stored as a second copy.
            raise ValueError("retry_deadline_s must be under duplicate_window_s")


class StorageConfig(Base, frozen=True):
    """Where the service keeps session logs, live data and the enrichment cache.

    Attributes:
        backend: ``files`` under the root (one host), or ``jetstream`` (many hosts).
        jetstream: The JetStream settings, used when ``backend = "jetstream"``.
    """

    backend: Literal["files", "jetstream"] = "files"
    jetstream: JetStreamConfig = msgspec.field(default_factory=JetStreamConfig)


class ScopeConfig(Base, frozen=True):
    """A live-data scope beside the defaults: the dotted branch paths it owns."""

    owns: list[str]


class LiveDataConfig(Base, frozen=True):
    """The generated live-data document and its lock."""

    lock_wait_s: Annotated[float, msgspec.Meta(ge=0, le=DAY_S)] = 5.0
    lock_stale_s: Annotated[float, msgspec.Meta(gt=0, le=7 * DAY_S)] = 600.0
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
    cost_usd: Annotated[float, msgspec.Meta(ge=0, le=MAX_ITEM_COST_USD)] | None = None
    usage: Literal["exact", "estimated"] = "estimated"
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=DAY_S * 1000)] = 0.0
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 32
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0
    url: str | None = None
    command: list[str] | None = None
    target: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    seed: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] = 0
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4


class EnrichmentConfig(Base, frozen=True):
    """Enrichment providers by source id."""

    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=dict)
    max_summary_bytes: Annotated[int, msgspec.Meta(ge=1, le=1 * MiB)] = 4096


class Config(Base, frozen=True):
    """The whole configuration file."""

    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    recorder: RecorderConfig = msgspec.field(default_factory=RecorderConfig)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    live_data: LiveDataConfig = msgspec.field(default_factory=LiveDataConfig)
    enrichment: EnrichmentConfig = msgspec.field(default_factory=EnrichmentConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)


class ConfigError(InvalidRequest):
    """The configuration cannot work: the message names the file, the key and its range.

    Raised at start-up, before anything is served; never a wire error (a subclass of
    :class:`InvalidRequest` so callers that caught that keep working).
    """

    code = "ConfigError"


_AT = " - at `"
_PARTS = re.compile(r"\[[^\]]*\]|[^.\[]+")


def _dotted(path: str) -> str:
    """``$.server.max_frame_bytes`` as ``server.max_frame_bytes``; ``[0]`` stays."""
    return path.removeprefix("$").removeprefix(".") or "(top level)"


def _field_type(path: str) -> Any:
    """The msgspec type info of the key at ``path`` (``$.a.b``), or ``None``."""
    info: Any = msgspec.inspect.type_info(Config)
    for part in _PARTS.findall(path.removeprefix("$")):
        while isinstance(info, msgspec.inspect.UnionType):
            info = next(
                (t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)), None
            )
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == part), None)
        elif isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
        if info is None:
            return None
    while isinstance(info, msgspec.inspect.UnionType):
        info = next((t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)), None)
    return info


def _number(value: float, integer: bool) -> str:
    if integer or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


def allowed_range(path: str) -> str | None:
    """The values the key at ``path`` (``$.server.max_frame_bytes``) allows, in words.

    Returns:
        For example ``"an integer from 256 to 1073741824"``, or ``None`` when the
        key is not one of the configuration's.
    """
    info = _field_type(path)
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        integer = isinstance(info, msgspec.inspect.IntType)
        what = "an integer" if integer else "a number"
        low, high = info.ge, info.le
        if low is not None and high is not None:
            return f"{what} from {_number(low, integer)} to {_number(high, integer)}"
        parts = []
        if low is not None:
            parts.append(f">= {_number(low, integer)}")
        if info.gt is not None:
            parts.append(f"> {_number(info.gt, integer)}")
        if high is not None:
            parts.append(f"<= {_number(high, integer)}")
        return f"{what} {' and '.join(parts)}" if parts else what
    if isinstance(info, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(f'"{v}"' for v in info.values)
    if isinstance(info, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(info, msgspec.inspect.StrType):
        return "a string"
    return None


def _name_entries(path: str, data: Any) -> str:
    """Replace each ``[...]`` (a table of named entries) in ``path`` by the failing name.

    msgspec does not name a dict's key in its path; the entries are converted one by
    one to find the one at fault, so the error says ``providers.my-source.cost_usd``.
    """
    if "[...]" not in path or not isinstance(data, dict):
        return path
    head, _, tail = path.partition("[...]")
    node: Any = data
    for part in _PARTS.findall(head.removeprefix("$")):
        node = node.get(part) if isinstance(node, dict) else None
    entry_type = _field_type(head + "[...]")
    if not isinstance(node, dict) or entry_type is None:
        return path
    target = (
        ScopeConfig
        if isinstance(entry_type, msgspec.inspect.StructType) and (entry_type.cls is ScopeConfig)
        else ProviderConfig
    )
    for name, value in node.items():
        try:
            msgspec.convert(value, target)
        except msgspec.ValidationError:
            return f"{head}.{name}{tail}"
    return path


def _config_error(exc: msgspec.ValidationError, source: str, data: Any = None) -> ConfigError:
    reason, _, path = str(exc).partition(_AT)
    path = path.rstrip("`") or "$"
    typed = path
    path = _name_entries(path, data)
    if reason.startswith("Object contains unknown field"):
        # The operator's own file: naming the unknown key is what helps fix it.
        key = reason.split("`")[1] if "`" in reason else "?"
        where = f"{_dotted(path)}.{key}" if path != "$" else key
        return ConfigError(f"{source}: unknown key {where}")
    allowed = allowed_range(typed)
    if allowed is not None:
        return ConfigError(f"{source}: {_dotted(path)} must be {allowed}")
    return ConfigError(f"{source}: {_dotted(path)}: {reason}")


def _plain(data: bytes | str) -> Any:
    """The TOML as plain tables, to name an entry in an error (``None`` if unreadable)."""
    try:
        return tomllib.loads(data.decode() if isinstance(data, bytes) else data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def check_config(config: Config, source: str = "the configuration") -> Config:
    """Check every bound of ``config`` against its allowed range, however it was built.

    A :class:`Config` built in Python skips the ranges that decoding a file checks;
    this checks them the same way (``open_service`` calls it at start-up).

    Args:
        config: The configuration.
        source: What to name in an error (the file's path).

    Returns:
        ``config`` itself when every key is within its range.

    Raises:
        ConfigError: A key is outside its range; the message names ``source``, the
            dotted key and the allowed range.
    """
    try:
        data = msgspec.to_builtins(config)
        msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise _config_error(exc, source, data) from None
    return config


def load_config(data: bytes | str | None, source: str = "the configuration") -> Config:
    """Decode a TOML configuration and check every key's range.

    Args:
        data: The TOML text, or ``None`` for the defaults.
        source: What to name in an error (the file's path).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The TOML is malformed, or a key is unknown, mistyped or out of
            its range; the message names ``source``, the dotted key and the range.
    """
    if data is None:
        return Config()
    try:
        return msgspec.toml.decode(data, type=Config)
    except msgspec.ValidationError as exc:
        raise _config_error(exc, source, _plain(data)) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
