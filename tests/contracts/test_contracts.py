"""Contracts: the error table of docs/protocol.md, the configuration, the recording types."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import contracts
from bus import ActorStopped, AskTimeout, BusError, SubscriberLagged
from contracts import (
    ERRORS,
    ActorbusError,
    AppendResult,
    Base,
    BusConfig,
    Config,
    ConfigError,
    Envelope,
    EventHead,
    InternalError,
    InvalidRequest,
    error_from_wire,
    load_config,
    status_of,
)

#: docs/protocol.md's error table, copied by hand: the names and statuses clients depend on.
DOCUMENTED_ERRORS = {
    "InvalidRequest": 400,
    "UnknownOp": 404,
    "InvalidEvent": 400,
    "OwnershipViolation": 403,
    "MissingSessionPath": 409,
    "EventTooLarge": 413,
    "FrameTooLarge": 413,
    "PrivacyViolation": 422,
    "LiveDataInvalid": 422,
    "LockBusy": 423,
    "RecorderIOError": 500,
    "ProviderError": 502,
    "Overloaded": 503,
    "ShuttingDown": 503,
}


@pytest.mark.parametrize(("code", "status"), sorted(DOCUMENTED_ERRORS.items()))
def test_every_spec_error_code_has_its_class_and_status(code: str, status: int) -> None:
    cls = getattr(contracts, code)
    assert issubclass(cls, ActorbusError)
    assert cls.code == code
    assert cls.status == status
    assert ERRORS[code] is cls
    assert status_of(code) == status


def test_the_table_holds_only_the_spec_codes_and_the_two_service_wide_ones() -> None:
    assert set(ERRORS) == set(DOCUMENTED_ERRORS) | {"InternalError", "Timeout"}
    assert (ERRORS["InternalError"].status, ERRORS["Timeout"].status) == (500, 504)
    assert all(cls.__doc__ for cls in ERRORS.values())


def test_an_error_travels_by_code_and_comes_back_as_its_class() -> None:
    for code, cls in ERRORS.items():
        err = error_from_wire(code, "the safe message")
        assert type(err) is cls
        assert err.message == "the safe message"
    unknown = error_from_wire("NoSuchCode", "whatever")
    assert type(unknown) is InternalError
    assert status_of("NoSuchCode") == 500


def test_an_error_without_a_message_carries_its_description() -> None:
    assert InvalidRequest().message.startswith("The request is malformed")
    assert InvalidRequest("bad field").message == "bad field"


def test_runtime_errors_map_to_wire_codes() -> None:
    assert issubclass(BusError, ActorbusError)
    assert (AskTimeout.code, AskTimeout.status) == ("Timeout", 504)
    assert (ActorStopped.code, ActorStopped.status) == ("Overloaded", 503)
    lagged = SubscriberLagged("behind", dropped=4)
    assert (lagged.code, lagged.status, lagged.dropped) == ("Overloaded", 503, 4)


DOCUMENTED_EXAMPLE = """
[recorder]
max_event_bytes = 262144
durability = "none"

[server]
max_frame_bytes = 1048576
idle_timeout_s = 30

[live_data]
lock_wait_s = 5.0
lock_stale_s = 600

[live_data.scopes.my-ext]
owns = ["extensions.items.my-ext"]

[enrichment.providers.my-source]
kind = "simulated"
cost_usd = 0.01
usage = "exact"
latency_ms = 0
"""


def test_no_configuration_means_the_defaults() -> None:
    assert load_config(None) == Config()
    assert load_config("") == Config()
    assert load_config(b"") == Config()
    assert Config().bus == BusConfig()


def test_the_spec_example_configuration_decodes() -> None:
    config = load_config(DOCUMENTED_EXAMPLE)
    assert config.recorder.max_event_bytes == 262_144
    assert config.server.idle_timeout_s == 30.0
    assert config.live_data.scopes["my-ext"].owns == ["extensions.items.my-ext"]
    provider = config.enrichment.providers["my-source"]
    assert (provider.kind, provider.cost_usd, provider.usage) == ("simulated", 0.01, "exact")
    assert config.bus == BusConfig()


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("mailbox = 3", "mailbox"),
        ("[recorder]\nmax_event_byte = 10", "max_event_byte"),
        ("[live_data.scopes.x]\nowns = []\nextra = 1", "extra"),
        ("[enrichment.providers.p]\nkindd = 'http'", "kindd"),
    ],
)
def test_an_unknown_key_is_a_config_error_naming_it(toml: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key .*{named}"):
        load_config(toml)


@pytest.mark.parametrize(
    "toml",
    [
        "[recorder]\ndurability = 'sometimes'",
        "[server]\nmax_frame_bytes = 'big'",
        "[bus]\nmailbox_size = 0",
        "[bus]\nshutdown_deadline_s = -1",
        "[enrichment.providers.p]\nkind = 'carrier-pigeon'",
        "[recorder\nmax_event_bytes = 1",
    ],
)
def test_a_bad_value_or_bad_toml_is_a_config_error(toml: str) -> None:
    with pytest.raises(ConfigError, match=r"^the configuration: .*(must be|not valid TOML)"):
        load_config(toml)


def test_our_wire_types_are_frozen_and_reject_unknown_fields() -> None:
    result = AppendResult(record_id="r1", recorded_at="2026-11-22T09:15:02.137Z")
    with pytest.raises(AttributeError):
        result.record_id = "r2"  # type: ignore[misc]
    raw = b'{"record_id":"r1","recorded_at":"t","extra":1}'
    with pytest.raises(msgspec.ValidationError, match="extra"):
        msgspec.json.decode(raw, type=AppendResult)
    assert issubclass(AppendResult, Base)


def test_an_event_head_reads_the_four_required_fields_and_ignores_the_rest() -> None:
    raw = b'{"record_id":"r","user_id":"u","session_id":"s","source":"x","more":{"a":1}}'
    head = msgspec.json.decode(raw, type=EventHead)
    assert (head.record_id, head.user_id, head.session_id, head.source) == ("r", "u", "s", "x")
    with pytest.raises(msgspec.ValidationError, match="source"):
        msgspec.json.decode(b'{"record_id":"r","user_id":"u","session_id":"s"}', type=EventHead)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(event=st.dictionaries(st.text(), json_values, max_size=6), spacing=st.booleans())
def test_an_envelope_keeps_the_event_bytes_exactly(event: dict[str, Any], spacing: bool) -> None:
    raw = json.dumps(event, separators=(", ", ": ") if spacing else (",", ":")).encode()
    line = msgspec.json.encode(
        Envelope(recorded_at="2026-11-22T09:15:02.137Z", event=msgspec.Raw(raw))
    )
    assert line == b'{"recorded_at":"2026-11-22T09:15:02.137Z","event":' + raw + b"}"
    assert bytes(msgspec.json.decode(line, type=Envelope).event) == raw
