from __future__ import annotations

import msgspec
import pytest

from contracts import (
    FRAMINGS,
    OP_EVENT,
    OPS,
    ErrorBody,
    EventMessage,
    OpRequest,
    PingRequest,
    Response,
    StatsRequest,
)


def test_the_ops_are_exactly_the_ones_the_spec_names() -> None:
    assert {
        "ping",
        "session.open",
        "append",
        "append.batch",
        "live.write",
        "live.read",
        "enrich",
        "stats",
        "subscribe",
    } == OPS
    assert OP_EVENT not in OPS
    assert FRAMINGS == ("msgpack", "jsonl")


def test_a_success_response_carries_a_result_and_no_error() -> None:
    data = msgspec.json.encode(Response(7, True, 201, {"record_id": "r"}))
    assert data == b'{"id":7,"ok":true,"status":201,"result":{"record_id":"r"}}'


def test_a_null_result_is_still_sent() -> None:
    assert msgspec.json.decode(msgspec.json.encode(Response("a", True, 200, None))) == {
        "id": "a",
        "ok": True,
        "status": 200,
        "result": None,
    }


def test_an_error_response_carries_the_error_and_no_result() -> None:
    response = Response(None, False, 404, error=ErrorBody("UnknownOp", "unknown op"))
    assert msgspec.json.decode(msgspec.json.encode(response)) == {
        "id": None,
        "ok": False,
        "status": 404,
        "error": {"code": "UnknownOp", "message": "unknown op"},
    }


def test_an_event_message_names_its_op_and_the_stream_id() -> None:
    data = msgspec.msgpack.encode(EventMessage(OP_EVENT, 3, {"n": 1}))
    assert msgspec.msgpack.decode(data) == {"op": "event", "id": 3, "data": {"n": 1}}


def test_a_typed_request_checks_its_op_and_forbids_unknown_fields() -> None:
    assert msgspec.json.decode(b'{"id":1,"op":"ping"}', type=PingRequest).id == 1
    assert msgspec.json.decode(b'{"op":"stats"}', type=StatsRequest).id is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"id":1,"op":"stats"}', type=PingRequest)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"id":1,"op":"ping","x":1}', type=PingRequest)


def test_an_op_request_subclass_round_trips_with_its_op_tag() -> None:
    class Echo(OpRequest, frozen=True, tag="echo"):
        value: int

    request = msgspec.json.decode(b'{"op":"echo","value":2,"id":"q"}', type=Echo)
    assert (request.id, request.value) == ("q", 2)
    assert msgspec.json.decode(msgspec.json.encode(request)) == {
        "op": "echo",
        "id": "q",
        "value": 2,
    }
