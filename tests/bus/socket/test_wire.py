from __future__ import annotations

import itertools
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus import FrameReader, FrameWriter, Request, Result, parse_request
from contracts import FrameTooLarge, InvalidRequest, PingRequest

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_every_complete_binary_frame_of_one_read_is_returned_at_once() -> None:
    writer = FrameWriter("msgpack")
    data = b"".join(writer.encode({"id": i, "op": "ping"}) for i in range(100))
    reader = FrameReader(1024)
    reader.feed(data)
    frames = reader.frames()
    assert reader.framing == "msgpack"
    assert [msgspec.msgpack.decode(f)["id"] for f in frames] == list(range(100))
    assert reader.buffered == 0


def test_a_first_brace_selects_json_lines_and_blank_lines_are_skipped() -> None:
    reader = FrameReader(1024)
    reader.feed(b'{"id":1,"op":"ping"}\n\n  \r\n{"id":2,"op":"ping"}\r\n{"id":3')
    frames = reader.frames()
    assert reader.framing == "jsonl"
    assert [msgspec.json.decode(f)["id"] for f in frames] == [1, 2]
    reader.feed(b',"op":"ping"}\n')
    assert [msgspec.json.decode(f)["id"] for f in reader.frames()] == [3]


def test_a_frame_split_across_many_reads_completes_once_whole() -> None:
    for framing in ("msgpack", "jsonl"):
        message = {"id": 7, "op": "echo", "value": "x" * 5000}
        data = FrameWriter(framing).encode(message)  # type: ignore[arg-type]
        reader = FrameReader(1 << 20)
        got: list[bytes] = []
        for i in range(0, len(data), 100):
            reader.feed(data[i : i + 100])
            got.extend(bytes(f) for f in reader.frames())
            if i + 100 < len(data):
                assert got == []
        decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
        assert [decode(g) for g in got] == [message]


def test_the_limit_leaves_the_remaining_frames_buffered_for_later() -> None:
    writer = FrameWriter("jsonl")
    reader = FrameReader(1024)
    reader.feed(b"".join(writer.encode({"id": i, "op": "ping"}) for i in range(10)))
    assert len(reader.frames(3)) == 3
    reader.feed(writer.encode({"id": 10, "op": "ping"}))
    rest = reader.frames()
    assert [msgspec.json.decode(f)["id"] for f in rest] == list(range(3, 11))


def test_an_oversized_binary_length_is_fatal_after_the_frames_before_it() -> None:
    good = frame(msgspec.msgpack.encode({"id": 1, "op": "ping"}))
    reader = FrameReader(64)
    reader.feed(good + struct.pack(">I", 65) + b"x" * 65 + good)
    frames = reader.frames()
    assert len(frames) == 1
    assert isinstance(reader.fatal, FrameTooLarge)
    reader.feed(good)
    assert reader.frames() == []


def test_a_json_line_over_the_limit_is_fatal_even_before_its_newline_arrives() -> None:
    reader = FrameReader(64)
    reader.feed(b'{"id":1,"op":"echo","value":"')
    reader.feed(b"y" * 40)
    assert reader.frames() == []
    assert reader.fatal is not None
    assert reader.fatal.status == 413


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    payload = msgspec.msgpack.encode({"id": 1, "op": "echo", "value": "z" * 40})
    reader = FrameReader(len(payload))
    reader.feed(frame(payload))
    assert [bytes(f) for f in reader.frames()] == [payload]
    assert reader.fatal is None


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(JSON_VALUES, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    framing=st.sampled_from(["msgpack", "jsonl"]),
)
def test_any_split_of_a_frame_stream_yields_the_same_frames(
    values: list[Any], cuts: list[int], framing: str
) -> None:
    writer = FrameWriter(framing)  # type: ignore[arg-type]
    messages = [{"id": i, "op": "echo", "value": v} for i, v in enumerate(values)]
    data = b"".join(writer.encode(m) for m in messages)
    reader = FrameReader(1 << 20)
    got: list[bytes] = []
    for piece in split_at(data, cuts):
        reader.feed(piece)
        got.extend(bytes(f) for f in reader.frames())
    decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
    assert [decode(g) for g in got] == messages
    assert reader.buffered == 0


def test_parse_request_reads_id_exactly_and_the_op() -> None:
    request = parse_request(b'{"op":"ping","id":1.50,"extra":[1,2]}', "jsonl")
    assert request.error is None
    assert request.op == "ping"
    assert bytes(request.id) == b"1.50"


@pytest.mark.parametrize(
    ("body", "framing", "fragment"),
    [
        (b"not json", "jsonl", "not valid JSON"),
        (b"[1,2]", "jsonl", "invalid request"),
        (b'{"id":3}', "jsonl", "no op"),
        (b'{"id":3,"op":5}', "jsonl", "not a string"),
        (b"\xc1", "msgpack", "not valid MessagePack"),
        (b"", "msgpack", "MessagePack"),
        (b'{"op":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "jsonl", "nested too deeply"),
        (b"\x91" * 50_000 + b"\xc0", "msgpack", "invalid request"),
    ],
)
def test_every_undecodable_frame_is_an_invalid_request(
    body: bytes, framing: str, fragment: str
) -> None:
    request = parse_request(body, framing)  # type: ignore[arg-type]
    assert isinstance(request.error, InvalidRequest)
    assert fragment in request.error.message


def test_an_invalid_request_keeps_its_id_when_the_head_was_readable() -> None:
    request = parse_request(b'{"id":"abc","op":null}', "jsonl")
    assert request.error is not None
    assert bytes(request.id) == b'"abc"'


def test_typed_decoding_rejects_unknown_fields_without_echoing_values() -> None:
    request = parse_request(b'{"id":1,"op":"ping","token":"sekrit-value"}', "jsonl")
    with pytest.raises(InvalidRequest) as caught:
        request.decode(PingRequest)
    # An unknown key is the client's text too: the message says where, not what.
    assert "unknown field" in caught.value.message
    assert "token" not in caught.value.message
    assert "sekrit-value" not in caught.value.message


def test_typed_decoding_never_echoes_a_rejected_value() -> None:
    class Scoped(msgspec.Struct):
        scope: str
        mode: int = 0

    request = Request(None, "x", b'{"scope":"ok","mode":"AKIA-not-a-number"}', "jsonl")
    with pytest.raises(InvalidRequest) as caught:
        request.decode(Scoped)
    assert "AKIA" not in caught.value.message
    assert "$.mode" in caught.value.message


def test_deep_nesting_in_a_typed_field_is_an_invalid_request() -> None:
    body = (
        msgspec.json.encode({"id": 1, "op": "x"})[:-1]
        + b',"v":'
        + b"[" * 20_000
        + b"]" * 20_000
        + b"}"
    )
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        Request(None, "x", body, "jsonl").fields()


def test_the_writer_prefixes_binary_frames_with_their_length() -> None:
    data = FrameWriter("msgpack").encode({"id": 1})
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4
    assert msgspec.msgpack.decode(data[4:]) == {"id": 1}


def test_the_writer_leaves_the_buffer_untouched_when_a_value_cannot_be_encoded() -> None:
    for framing in ("msgpack", "jsonl"):
        writer = FrameWriter(framing)  # type: ignore[arg-type]
        buffer = bytearray(b"kept")
        with pytest.raises(TypeError):
            writer.add({"value": object()}, buffer)
        assert buffer == b"kept"


def test_a_result_carries_its_status() -> None:
    result = Result({"created": True}, 201)
    assert (result.value, result.status) == ({"created": True}, 201)
    assert Result(None).status == 200
