"""Decoding client input: errors name the contract's fields and paths, never what was sent."""

from __future__ import annotations

import string
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    OPS,
    AppendBatchRequest,
    EnrichOpRequest,
    EnrichRequest,
    InvalidRequest,
    LiveWriteRequest,
    SessionOpenRequest,
    SubscribeRequest,
    contract_names,
    decode_as,
    decode_enrich_request,
    unknown_op_message,
)

TYPES: list[Any] = [
    SessionOpenRequest,
    AppendBatchRequest,
    LiveWriteRequest,
    EnrichOpRequest,
    SubscribeRequest,
    EnrichRequest,
]
#: Secrets long enough that no contract name or msgspec word holds one by chance.
secrets = st.text(string.ascii_letters + string.digits + "_-", min_size=12, max_size=40).filter(
    lambda s: not any(s.lower() in name.lower() for t in TYPES for name in contract_names(t))
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), secrets)


def _values(secret: str) -> st.SearchStrategy[Any]:
    """Any JSON-like value, with the secret as keys and string values."""
    base = st.one_of(leaves, st.just(secret))
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.just(secret), inner, max_size=1)
        ),
        max_leaves=6,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=secrets, framing=st.sampled_from(["jsonl", "msgpack"]))
def test_no_decode_error_repeats_a_key_or_value_of_the_input(
    data: st.DataObject, secret: str, framing: str
) -> None:
    type = data.draw(st.sampled_from(TYPES))
    fields = [f.encode_name for f in msgspec.structs.fields(type)]
    request: dict[str, Any] = {}
    if type is not EnrichRequest:
        request["op"] = type.__struct_config__.tag
    for name in fields:
        if data.draw(st.booleans()):
            request[name] = data.draw(_values(secret))
    if data.draw(st.booleans()):
        request[secret] = data.draw(_values(secret))
    encode = msgspec.json.encode if framing == "jsonl" else msgspec.msgpack.encode
    try:
        body = encode(request)
    except (OverflowError, msgspec.EncodeError):
        return
    try:
        decode_as(body, type, framing)
    except InvalidRequest as exc:
        assert secret not in exc.message
        assert exc.message.startswith("invalid request: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"op":"session.open","user_id":"u","session_id":"s","AKIAIOSFODNN7EXAMPLE":1}',
            "invalid request: an unknown field at `$`"
            " (its fields are: op, user_id, session_id, id)",
        ),
        (
            b'{"op":"session.open","user_id":5,"session_id":"s"}',
            "invalid request: Expected `str`, got `int` at `$.user_id`",
        ),
        (
            b'{"op":"session.open","session_id":"s"}',
            "invalid request: Object missing required field `user_id` at `$`",
        ),
        (
            b'{"op":"ghp_0123456789abcdef","user_id":"u","session_id":"s"}',
            "invalid request: a value that is not one of the allowed values at `$.op`",
        ),
        (b'{"op":"session.open",', "invalid request: not valid input: Input data was truncated"),
    ],
)
def test_a_decode_error_says_what_and_where_in_the_contract_names(
    body: bytes, message: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_as(body, SessionOpenRequest)
    assert raised.value.message == message


def test_a_path_shows_contract_names_and_positions_but_no_client_key() -> None:
    request = {
        "run_id": "r",
        "enrichment_type": "t",
        "adapter_version": "1",
        "items": [
            {"source_id": "s", "item_id": "i"},
            {"source_id": "s", "item_id": "i", "zq_secret_key": 1},
        ],
    }
    with pytest.raises(InvalidRequest) as raised:
        decode_enrich_request(request)
    assert "at `$.items[1]`" in raised.value.message
    assert "zq_secret_key" not in raised.value.message
    assert "source_id, item_id, metadata, priority, force" in raised.value.message
    live = b'{"op":"live.write","scope":"full","data":{"zq_secret_key":{"x":1}},"delete":"zq_v"}'
    with pytest.raises(InvalidRequest) as raised:
        decode_as(live, LiveWriteRequest)
    assert raised.value.message == "invalid request: Expected `bool`, got `str` at `$.delete`"


def test_an_unknown_op_is_named_only_when_it_is_the_protocols() -> None:
    assert "ghp_" not in unknown_op_message("ghp_0123456789abcdef")
    assert "live.read" in unknown_op_message("ghp_0123456789abcdef")
    assert unknown_op_message("stats") == "unknown op 'stats' (this service does not answer it)"
    assert all(op in unknown_op_message(None) for op in OPS)
