"""Every configuration bound has a range, checked however the configuration was built."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts import (
    Config,
    ConfigError,
    InvalidRequest,
    ProviderConfig,
    ServerConfig,
    allowed_range,
    check_config,
    load_config,
)


def _numeric_keys(info: Any = None, prefix: str = "$") -> list[tuple[str, Any]]:
    """Every int or float key of the configuration, with its msgspec type info."""
    info = msgspec.inspect.type_info(Config) if info is None else info
    found: list[tuple[str, Any]] = []
    while isinstance(info, msgspec.inspect.UnionType):
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(info, msgspec.inspect.StructType):
        for field in info.fields:
            found += _numeric_keys(field.type, f"{prefix}.{field.encode_name}")
    elif isinstance(info, msgspec.inspect.DictType):
        found += _numeric_keys(info.value_type, f"{prefix}[...]")
    elif isinstance(info, msgspec.inspect.ListType):
        found += _numeric_keys(info.item_type, f"{prefix}[0]")
    elif isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        found.append((prefix, info))
    return found


NUMERIC = _numeric_keys()


def test_every_numeric_key_of_every_section_has_a_lower_and_an_upper_bound() -> None:
    sections = {path.split(".")[1] for path, _ in NUMERIC}
    assert sections == {
        "bus",
        "recorder",
        "server",
        "live_data",
        "enrichment",
        "http",
        "storage",
    }
    unbounded = [
        path
        for path, info in NUMERIC
        if (info.ge is None and info.gt is None) or (info.le is None and info.lt is None)
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[server]\nmax_frame_bytes = -5", "server.max_frame_bytes", "an integer from 256 to"),
        ("[server]\nidle_timeout_s = 0", "server.idle_timeout_s", "a number > 0 and <= 86400"),
        ("[server]\nmax_inflight_total = 0", "server.max_inflight_total", "an integer from 1 to"),
        ("[recorder]\nmax_event_bytes = 0", "recorder.max_event_bytes", "an integer from 128 to"),
        ("[http]\nheader_timeout_s = inf", "http.header_timeout_s", "a number > 0 and <= 86400"),
        ("[live_data]\nlock_wait_s = nan", "live_data.lock_wait_s", "a number from 0 to 86400"),
        ("[bus]\nmailbox_size = 10000000", "bus.mailbox_size", "an integer from 1 to 1048576"),
        (
            "[enrichment.providers.ok]\n[enrichment.providers.my-source]\ntimeout_s = 1e300",
            "enrichment.providers.my-source.timeout_s",
            "a number > 0 and <= 86400",
        ),
        ("[server]\nallowed_uids = [0, -1]", "server.allowed_uids[1]", "an integer from 0 to"),
        ("[recorder]\ndurability = 'often'", "recorder.durability", 'one of "fsync", "none"'),
    ],
)
def test_a_key_out_of_range_names_the_file_the_key_and_the_range(
    toml: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(toml, "/etc/actorbus.toml")
    message = raised.value.message
    assert message.startswith(f"/etc/actorbus.toml: {key} must be {allowed}")
    assert raised.value.code == "ConfigError"
    # Callers that caught InvalidRequest keep working; the label is ConfigError.
    assert isinstance(raised.value, InvalidRequest)


def test_a_configuration_built_in_python_is_checked_the_same_way() -> None:
    assert check_config(Config()) == Config()
    bad = Config(server=ServerConfig(max_frame_bytes=-5))
    with pytest.raises(ConfigError, match=r"server\.max_frame_bytes must be an integer from 256"):
        check_config(bad)
    providers = {"a": ProviderConfig(), "b": ProviderConfig(concurrency=0)}
    with pytest.raises(ConfigError, match=r"enrichment\.providers\.b\.concurrency must be"):
        check_config(msgspec.structs.replace(Config(), enrichment=msgspec.structs.replace(
            Config().enrichment, providers=providers
        )))  # fmt: skip


def test_the_defaults_are_within_every_range() -> None:
    data = msgspec.to_builtins(Config())
    assert msgspec.convert(data, Config) == Config()
    assert all(allowed_range(path) is not None for path, _ in NUMERIC)


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[storage.jetstream]\nretry_deadline_s = 200", "retry_deadline_s must be under"),
        ("[storage.jetstream]\nservers = []", "at least one NATS server"),
        ("[storage]\nbackend = 'kafka'", "storage.backend"),
    ],
)
def test_a_jetstream_configuration_that_cannot_work_is_refused(toml: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config(toml, "bus.toml")
