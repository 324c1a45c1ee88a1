"""The recording boundary: safe ids, event validation, the envelope and recorded_at."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import session_path, session_topic
from actors.session.events import (
    ENVELOPE_OVERHEAD,
    EventCheck,
    RecordedAt,
    check_id,
    format_recorded_at,
)
from contracts import EventTooLarge, InvalidEvent

UNSAFE_IDS = [
    "",
    ".",
    "..",
    "...",
    "a..b",
    "../etc",
    "x/..",
    "a/b",
    "/abs",
    "a\\b",
    "a\x00b",
    "a b",
    "a\n",
    "\na",
    "é",
    "\uff41",  # a fullwidth letter a
    "x" * 129,
    "a:b",
    "~user",
]


def event(**fields: object) -> bytes:
    base: dict[str, object] = {
        "record_id": "r1",
        "user_id": "u1",
        "session_id": "s1",
        "source": "test",
    }
    base.update(fields)
    return json.dumps(base, separators=(",", ":")).encode()


@pytest.mark.parametrize("value", UNSAFE_IDS)
def test_every_unsafe_id_shape_is_rejected(value: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        check_id(value, "user_id")
    if len(value) >= 3:
        assert value not in info.value.message  # a rejected value is never echoed


@pytest.mark.parametrize("value", ["a", "A-Z_0.9", "x" * 128, ".hidden", "-", "s.1"])
def test_safe_ids_are_accepted(value: str) -> None:
    assert check_id(value, "session_id") == value


def test_non_string_id_is_rejected() -> None:
    with pytest.raises(InvalidEvent):
        check_id(7, "user_id")


def test_session_path_is_under_the_users_sessions_directory(tmp_path: Path) -> None:
    path = session_path(tmp_path, "u1", "s1")
    assert path == tmp_path / "logs" / "users" / "u1" / "sessions" / "s1.jsonl"


@pytest.mark.parametrize("value", ["..", "a/b", ""])
def test_session_path_refuses_unsafe_ids(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidEvent):
        session_path(tmp_path, value, "s1")
    with pytest.raises(InvalidEvent):
        session_path(tmp_path, "u1", value)


def test_session_topic_names_user_and_session() -> None:
    assert session_topic("u1", "s1") == "session:u1/s1"
    assert session_topic("u1", "s1") != session_topic("u1", "s2")


def test_recorded_at_is_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 22, 10, 15, 2, 137999, tzinfo=timezone(timedelta(hours=1)))
    assert format_recorded_at(moment) == "2026-11-22T09:15:02.137Z"
    assert format_recorded_at(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


def test_recorded_at_from_the_system_clock_matches_the_pattern() -> None:
    text, prefix, between = RecordedAt()()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert prefix == b'{"recorded_at":"' + text.encode() + b'","event":'
    assert between == b"}\n" + prefix
    now = datetime.now(UTC)
    stamped = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(now - stamped) < timedelta(minutes=1)


@given(st.integers(min_value=0, max_value=4_102_444_800_000), st.integers(0, 2_500))
@settings(max_examples=200, deadline=None)
def test_system_clock_stamps_are_exact_across_seconds(start_ms: int, step_ms: int) -> None:
    # The system clock's stamp reuses the text up to the second: every millisecond,
    # across second, day and year boundaries, must still read as the exact moment.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    stamp = RecordedAt()
    for millis in (start_ms, start_ms + step_ms, start_ms + 2 * step_ms + 1):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("actors.session.events.time.time_ns", lambda m=millis: m * 1_000_000)
            text = stamp()[0]
        assert text == format_recorded_at(epoch + timedelta(milliseconds=millis))


def test_recorded_at_follows_an_injected_clock() -> None:
    moments = iter(
        [datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)]
    )
    stamp = RecordedAt(lambda: next(moments))
    assert stamp()[0] == "2026-01-01T00:00:00.001Z"
    assert stamp()[0] == "2026-01-01T00:00:01.000Z"


def test_envelope_overhead_matches_a_real_line() -> None:
    _, prefix, _ = RecordedAt()()
    raw = event()
    line = prefix + raw + b"}\n"
    assert len(line) == len(raw) + ENVELOPE_OVERHEAD


def test_event_bytes_are_kept_byte_for_byte() -> None:
    raw = (
        b'{"record_id":"r1","user_id":"u1","session_id":"s1","source":"t",'
        b'"timestamp":"2026-11-22T09:15:02.1370+01:00","n":1.50,"big":18446744073709551615,'
        b'"low":-9223372036854775808,"e":1E5,"x":1.5E+300,"id":"12345678901234567890123",'
        b'"tiny":1e-400,"s":"caf\\u00e9 \\/","unknown":{"nested":[1, 2 ,3]}}'
    )
    checked, head = EventCheck(4096).check(raw)
    assert checked == raw
    assert (head.record_id, head.user_id, head.session_id, head.source) == ("r1", "u1", "s1", "t")


def test_pretty_printed_event_becomes_one_line_with_values_untouched() -> None:
    raw = (
        b'{\n  "record_id": "r1",\r\n  "user_id": "u1",\n  "session_id": "s1",\n'
        b'  "source": "t",\n  "timestamp": "2026-11-22T09:15:02.137000Z",\n'
        b'  "v": 1.50,\n  "s": "a\\nb"\n}\n'
    )
    checked, _ = EventCheck(4096).check(raw)
    assert b"\n" not in checked and b"\r" not in checked
    assert b'"2026-11-22T09:15:02.137000Z"' in checked
    assert b"1.50" in checked and b'"a\\nb"' in checked
    assert json.loads(checked) == json.loads(raw)


def test_trailing_newline_of_a_jsonl_line_is_dropped_without_reformatting() -> None:
    raw = event(extra="x")
    checked, _ = EventCheck(4096).check(raw + b"\n")
    assert checked == raw


def test_mapping_event_is_encoded_once() -> None:
    checked, head = EventCheck(4096).check(
        {"record_id": "r1", "user_id": "u1", "session_id": "s1", "source": "t", "n": [1, 2]}
    )
    assert json.loads(checked)["n"] == [1, 2]
    assert head.record_id == "r1"


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",
        b'"text"',
        b"not json",
        b"{",
        b"",
        b'{"record_id":"r1","user_id":"u1","session_id":"s1","source":"t"} trailing',
        event(record_id=""),
        event(source=""),
        event(record_id=5),
        event(user_id=None),
        event(session_id="../x"),
        event(user_id="a/b"),
        b'{"user_id":"u1","session_id":"s1","source":"t"}',
        b'{"record_id":"r1","user_id":"u1","session_id":"s1","source":"t","x":"\xff"}',
        b"[" * 10_000 + b"]" * 10_000,
    ],
)
def test_invalid_events_are_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        EventCheck(65536).check(raw)


def test_unencodable_mapping_is_rejected() -> None:
    with pytest.raises(InvalidEvent):
        EventCheck(4096).check({"record_id": object()})


def test_non_event_types_are_rejected() -> None:
    with pytest.raises(InvalidEvent):
        EventCheck(4096).check(42)  # type: ignore[arg-type]


def test_the_limit_counts_the_whole_line_with_its_newline() -> None:
    base = event(pad="")
    limit = 1024
    fitting = event(pad="x" * (limit - ENVELOPE_OVERHEAD - len(base)))
    assert len(fitting) + ENVELOPE_OVERHEAD == limit
    EventCheck(limit).check(fitting)
    over = event(pad="x" * (limit - ENVELOPE_OVERHEAD - len(base) + 1))
    with pytest.raises(EventTooLarge) as info:
        EventCheck(limit).check(over)
    assert str(limit) in info.value.message


def test_pretty_printed_event_is_judged_by_its_folded_size() -> None:
    compact = event(pad="x" * 100)
    pretty = compact.replace(b",", b",\n" + b" " * 40)
    limit = len(compact) + ENVELOPE_OVERHEAD + 40  # room for the spaces folding keeps
    assert len(pretty) + ENVELOPE_OVERHEAD > limit
    checked, _ = EventCheck(limit).check(pretty)
    assert len(checked) + ENVELOPE_OVERHEAD <= limit


events_strategy = st.lists(
    st.one_of(
        st.builds(
            lambda rid, uid, sid, extra: event(record_id=rid, user_id=uid, session_id=sid, x=extra),
            st.text(min_size=0, max_size=5),
            st.sampled_from(["u1", "u2", "..", "a/b", ""]),
            st.sampled_from(["s1", "s.2", "x" * 129]),
            st.text(max_size=20),
        ),
        st.binary(max_size=30),
        st.just(b'{\n"record_id":"r","user_id":"u1","session_id":"s1","source":"t"}'),
        st.just(b' {"record_id":"r","user_id":"u1","session_id":"s1","source":"t"} '),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_batch_check_agrees_with_the_single_check(events: list[bytes]) -> None:
    checker = EventCheck(200)
    batch = checker.check_batch(events)
    assert len(batch) == len(events)
    for raw, outcome in zip(events, batch, strict=True):
        try:
            expected = checker.check(raw)
        except (InvalidEvent, EventTooLarge) as exc:
            assert type(outcome) is type(exc)
        else:
            assert not isinstance(outcome, Exception)
            assert outcome[0] == expected[0]
            assert msgspec.structs.asdict(outcome[1]) == msgspec.structs.asdict(expected[1])


@settings(max_examples=300, deadline=None)
@given(events_strategy)
def test_the_fast_single_check_agrees_with_the_full_one(events: list[bytes]) -> None:
    checker = EventCheck(200)
    for raw in events:
        try:
            expected = checker._check_any(raw)
        except (InvalidEvent, EventTooLarge) as exc:
            with pytest.raises(type(exc)):
                checker.check(raw)
        else:
            got = checker.check(raw)
            assert got[0] == expected[0]
            assert msgspec.structs.asdict(got[1]) == msgspec.structs.asdict(expected[1])


one_session_batches = st.lists(
    st.builds(
        lambda rid, sid, source: event(record_id=rid, user_id="u1", session_id=sid, source=source),
        st.sampled_from(["r1", "r2", ""]),
        st.sampled_from(["s1", "s1", "s1", "s2"]),
        st.sampled_from(["t", "t", ""]),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(one_session_batches)
def test_a_session_batch_is_taken_whole_only_when_every_event_is_valid_and_of_one_session(
    events: list[bytes],
) -> None:
    checker = EventCheck(400)
    check_id("u1", "user_id")
    check_id("s1", "session_id")
    check_id("s2", "session_id")
    expected = checker.check_batch(events)
    valid = [outcome for outcome in expected if not isinstance(outcome, Exception)]
    sessions = {(head.user_id, head.session_id) for _, head in valid}
    whole = len(events) >= 4 and len(valid) == len(events) and len(sessions) == 1
    # The first sight of a session is checked on generic heads, the second by the
    # session's own decoder: both must agree with the per-event check.
    first = checker.plain_batch(events)[0]
    second = checker.plain_batch(events)[0]
    if not whole:
        assert first is None and second is None
    else:
        session = sessions.pop()
        assert first == second == (session, [head.record_id for _, head in valid])
        assert session in checker._session_decoders


def test_session_decoders_are_bounded() -> None:
    checker = EventCheck(400)
    check_id("u1", "user_id")
    for n in range(200):
        session = f"bound{n}"
        check_id(session, "session_id")
        batch = [event(record_id=f"r{i}", user_id="u1", session_id=session) for i in range(4)]
        for _ in range(2):  # generic heads, then the session's decoder
            assert checker.plain_batch(batch)[0] == (("u1", session), ["r0", "r1", "r2", "r3"])
        assert ("u1", session) in checker._session_decoders
    assert len(checker._session_decoders) <= 64
    assert len(checker._sessions_seen) <= 64


def test_a_batch_with_one_event_over_the_bound_is_not_taken_whole() -> None:
    small = [event(record_id=f"r{i}") for i in range(6)]
    bound = max(map(len, small)) + ENVELOPE_OVERHEAD  # each fits; together they do not
    checker = EventCheck(bound)
    assert checker.heads_at_once(small) is not None
    big = event(record_id="r9", pad="x" * 50)
    for place in (0, 3, 6):
        batch = [*small[:place], big, *small[place:]]
        assert checker.heads_at_once(batch) is None
        outcomes = checker.check_batch(batch)
        assert isinstance(outcomes[place], EventTooLarge)
        assert sum(isinstance(o, Exception) for o in outcomes) == 1


def _outcome(outcome: object) -> object:
    if isinstance(outcome, Exception):
        return type(outcome)
    raw, head = outcome  # type: ignore[misc]
    return raw, msgspec.structs.asdict(head)


@settings(max_examples=300, deadline=None)
@given(st.one_of(events_strategy, one_session_batches))
def test_a_plain_batch_is_settled_as_the_per_event_check_settles_it(events: list[bytes]) -> None:
    checker = EventCheck(400)
    check_id("u1", "user_id")
    check_id("s1", "session_id")
    expected = [_outcome(o) for o in checker.check_batch(events, None)]
    for _ in range(2):  # generic heads, then the session's decoder where one is made
        one, heads = checker.plain_batch(events)
        assert (heads is None) == (one is not None or checker.heads_at_once(events) is None)
        if one is not None:
            session, record_ids = one
            assert all(not isinstance(o, type) for o in expected)
            assert {(h["user_id"], h["session_id"]) for _, h in expected} == {session}  # type: ignore[misc]
            assert record_ids == [h["record_id"] for _, h in expected]  # type: ignore[misc]
        else:
            assert [_outcome(o) for o in checker.check_batch(events, heads)] == expected


HEAD = b'"record_id":"r1","user_id":"u1","session_id":"s1","source":"t"'


@pytest.mark.parametrize(
    "value",
    [
        b"1" + b"0" * 9999,  # the 10,000-digit integer
        b"18446744073709551616",  # 2**64
        b"-9223372036854775809",  # -2**63 - 1
        b"1e400",
        b"-1E+400",
        b"1" + b"0" * 400 + b".0",  # a float literal that overflows without an exponent
        b'[1, {"deep": 123456789012345678901234567890}]',
    ],
)
def test_a_number_not_every_reader_can_carry_is_rejected(value: bytes) -> None:
    raw = b"{" + HEAD + b',"v":' + value + b"}"
    checker = EventCheck(1 << 20)
    with pytest.raises(InvalidEvent, match="not every reader can carry") as caught:
        checker.check(raw)
    assert value[:12].decode() not in caught.value.message
    # The batch paths decide the same, and the other events of the batch pass.
    good = b"{" + HEAD + b',"v":1}'
    outcomes = checker.check_batch([good, raw, good])
    assert [type(o).__name__ for o in outcomes] == ["tuple", "InvalidEvent", "tuple"]
    assert checker.plain_batch([good, raw, good, good]) == (None, None)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_in_a_decoded_event_are_rejected_not_written_as_null(
    value: float,
) -> None:
    event = {"record_id": "r1", "user_id": "u1", "session_id": "s1", "source": "t"}
    with pytest.raises(InvalidEvent, match="NaN or Infinity"):
        EventCheck(4096).check({**event, "nested": {"list": [1, value]}})
    with pytest.raises(InvalidEvent, match="outside"):
        EventCheck(4096).check({**event, "n": 2**64})
    checked, _ = EventCheck(4096).check({**event, "n": None, "f": 1.5, "i": 2**64 - 1})
    assert checked.endswith(b'"n":null,"f":1.5,"i":18446744073709551615}')


def _shaped(
    record_id: str, n: object = 1, f: object = 1.5, deep: object = 7, items: object = None
) -> bytes:
    items = [1, 2] if items is None else items
    body = {"n": n, "f": f, "obj": {"deep": deep, "tag": "x"}, "items": items, "ok": True}
    body["no"] = None
    return event(record_id=record_id, session_id="shaped", **body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2**64),
        ("n", -(2**63) - 1),
        ("f", 10**30),  # an integer literal where the first events held a float
        ("deep", 2**70),
        ("items", [1, 2**65]),
    ],
)
def test_a_whole_event_decoder_never_takes_a_number_not_every_reader_can_carry(
    field: str, value: object
) -> None:
    check_id("u1", "user_id")
    check_id("shaped", "session_id")
    checker = EventCheck(4096)
    good = [_shaped(f"r{i}") for i in range(4)]
    for _ in range(2):  # generic heads, then the session's whole-event decoder
        assert checker.plain_batch(good)[0] == (("u1", "shaped"), ["r0", "r1", "r2", "r3"])
    assert checker._session_decoders[("u1", "shaped")][1] is True
    bad = _shaped("bad", **{field: value})
    batch = [*good[:2], bad, *good[2:]]
    assert checker.plain_batch(batch)[0] is None
    outcomes = checker.check_batch(batch)
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["tuple", "tuple", "InvalidEvent", "tuple", "tuple"]


def test_a_uint64_number_a_whole_event_decoder_refuses_is_still_recorded() -> None:
    check_id("u1", "user_id")
    check_id("shaped", "session_id")
    checker = EventCheck(4096)
    good = [_shaped(f"r{i}") for i in range(4)]
    checker.plain_batch(good)
    checker.plain_batch(good)
    batch = [*good, _shaped("big", n=2**64 - 1)]
    # The decoder takes int64 only; the long way decides, and 2**64-1 is portable.
    one, heads = checker.plain_batch(batch)
    assert one is None
    assert all(not isinstance(o, Exception) for o in checker.check_batch(batch, heads))


def test_a_session_whole_event_decoder_spares_the_number_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import actors.session.events as events_module

    check_id("u1", "user_id")
    check_id("shaped", "session_id")
    checker = EventCheck(4096)
    good = [_shaped(f"r{i}") for i in range(8)]
    checker.plain_batch(good)
    checker.plain_batch(good)
    scans: list[bytes] = []
    real = events_module.json_plain

    def counting(raw: bytes) -> bool:
        scans.append(raw)
        return real(raw)

    monkeypatch.setattr(events_module, "json_plain", counting)
    assert checker.plain_batch(good)[0] == (("u1", "shaped"), [f"r{i}" for i in range(8)])
    assert scans == []
    # Another shape is decided the long way (scanned), and the session keeps its
    # head decoder from then on.
    other = [event(record_id=f"o{i}", session_id="shaped", extra=[]) for i in range(4)]
    assert checker.plain_batch(other)[0] == (("u1", "shaped"), ["o0", "o1", "o2", "o3"])
    assert scans
    assert checker._session_decoders[("u1", "shaped")][1] is False


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=4)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(json_values, json_values), min_size=4, max_size=8))
def test_every_shape_of_one_session_batch_is_settled_as_the_per_event_check_settles_it(
    values: list[tuple[object, object]],
) -> None:
    check_id("u1", "user_id")
    check_id("anyshape", "session_id")
    events = []
    for i, (a, b) in enumerate(values):
        head = {"record_id": f"r{i}", "user_id": "u1", "session_id": "anyshape", "source": "t"}
        events.append(json.dumps({**head, "a": a, "b": b}, separators=(",", ":")).encode())
    checker = EventCheck(1 << 16)
    expected = [_outcome(o) for o in checker.check_batch(events, None)]
    for _ in range(3):  # generic heads, the session's decoder when made, then again
        one, heads = checker.plain_batch(events)
        if one is not None:
            assert all(not isinstance(o, type) for o in expected)
            assert one[1] == [h["record_id"] for _, h in expected]  # type: ignore[misc]
        else:
            assert [_outcome(o) for o in checker.check_batch(events, heads)] == expected
