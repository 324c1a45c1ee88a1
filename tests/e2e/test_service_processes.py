"""``actorbus serve`` as a real process: signals, a second server, kill -9 under load, fuzz."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.service import (
    acked_ids,
    cli,
    event,
    root_dir,
    run_cli,
    socket_of,
    start_load,
    start_serve,
    stop,
    wait_for_lines,
)

from bus import FrameReader, FrameWriter, SyncClient
from contracts import ERRORS, Framing


@pytest.fixture
def root() -> Iterator[Path]:
    with root_dir() as path:
        yield path


def recorded(root: Path, user: str, session: str) -> list[str]:
    """The record ids in a session log, checking that every line is whole JSON."""
    data = (root / "logs" / "users" / user / "sessions" / f"{session}.jsonl").read_bytes()
    assert data.endswith(b"\n"), "the log ends in a partial line"
    return [msgspec.json.decode(line)["event"]["record_id"] for line in data.splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_a_signal_then_exits_0_and_removes_the_socket(
    root: Path, sig: signal.Signals
) -> None:
    proc = start_serve(root)
    path = socket_of(root)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with SyncClient.connect(path, timeout=10) as client:
            assert client.request("session.open", user_id="u", session_id="s") == {"created": True}
    finally:
        code = stop(proc, sig)
    assert code == 0
    assert not path.exists()
    assert proc.stderr is not None
    assert b"actorbus: stopped" in proc.stderr.read()


def test_a_second_server_on_a_live_socket_exits_non_zero_with_one_line(root: Path) -> None:
    first = start_serve(root)
    try:
        second = subprocess.Popen(cli("serve", "--root", str(root)), stderr=subprocess.PIPE)
        _, stderr = second.communicate(timeout=30)
        assert second.returncode != 0
        lines = stderr.strip().splitlines()
        assert len(lines) == 1
        assert b"another actorbus server is running on" in lines[0]
        with SyncClient.connect(socket_of(root), timeout=10) as client:
            assert client.request("ping") == {"pong": True}
    finally:
        assert stop(first) == 0


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (b"[recorder]\nmax_event_bites = 1\n", b"ConfigError: "),
        (b'[live_data.scopes.x]\nowns = ["extensions.items"]\n', b"overlap"),
        (None, b"cannot read the configuration"),
    ],
)
def test_a_bad_configuration_exits_4_with_one_clear_line(
    root: Path, toml: bytes | None, expected: bytes
) -> None:
    config = root / "actorbus.toml"
    if toml is not None:
        config.write_bytes(toml)
    result = run_cli("serve", "--root", str(root), "--config", str(config))
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert not socket_of(root).exists()


_Loads = list[tuple[subprocess.Popen[bytes], bytes]]


def _loaded(root: Path) -> _Loads:
    """Three client processes appending, two of them into one session; started and acked.

    Each load comes with the output already read from it (its first 500 acknowledged
    appends), which :func:`_acked` counts with the rest.
    """
    path = socket_of(root)
    with SyncClient.connect(path, timeout=10) as client:
        client.request("session.open", user_id="u", session_id="shared")
    loads = [
        start_load(path, "u", "shared", "a", 200_000),
        start_load(path, "u", "shared", "b", 200_000),
        start_load(path, "u", "own", "c", 200_000),
    ]
    # 500 acknowledged appends each, and going on.
    return [(load, b"".join(wait_for_lines(load, 500))) for load in loads]


def _acked(loads: _Loads) -> dict[str, list[str]]:
    acked: dict[str, list[str]] = {}
    for (load, seen), session in zip(loads, ["shared", "shared", "own"], strict=True):
        output, _ = load.communicate(timeout=60)
        acked.setdefault(session, []).extend(acked_ids(seen + output))
    return acked


def test_kill_9_under_load_loses_no_acknowledged_append_and_a_restart_reuses_the_socket(
    root: Path,
) -> None:
    proc = start_serve(root)
    try:
        loads = _loaded(root)
    finally:
        stop(proc, signal.SIGKILL)
    acked = _acked(loads)
    assert sum(len(ids) for ids in acked.values()) >= 1_500
    for session, ids in acked.items():
        on_disk = recorded(root, "u", session)
        assert set(ids) <= set(on_disk)
        for name in ("a", "b", "c"):  # each producer's order is kept
            mine = [rid for rid in on_disk if rid.startswith(name + "-")]
            assert mine == sorted(mine)
    assert socket_of(root).exists()  # the crash left it behind
    again = start_serve(root)
    try:
        with SyncClient.connect(socket_of(root), timeout=10) as client:
            client.request("append", event=msgspec.json.decode(event("u", "own", "after")))
    finally:
        assert stop(again) == 0
    assert recorded(root, "u", "own")[-1] == "after"


def test_sigterm_under_load_exits_0_removes_the_socket_and_loses_nothing_acknowledged(
    root: Path,
) -> None:
    proc = start_serve(root)
    try:
        loads = _loaded(root)
    finally:
        code = stop(proc, signal.SIGTERM)
    acked = _acked(loads)
    assert code == 0
    assert not socket_of(root).exists()
    assert sum(len(ids) for ids in acked.values()) > 0
    for session, ids in acked.items():
        assert set(ids) <= set(recorded(root, "u", session))


# ---- fuzz against a real service process ---------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_root() -> Iterator[Path]:
    with root_dir() as root:
        config = root / "fuzz.toml"
        config.write_bytes(b"[server]\nmax_frame_bytes = 8192\nidle_timeout_s = 0.5\n")
        proc = start_serve(root, "--config", str(config), "--log-level", "error")
        try:
            with SyncClient.connect(socket_of(root), timeout=10) as client:
                client.request("session.open", user_id="u", session_id="s")
            yield root
        finally:
            assert stop(proc) == 0


ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["event", "events", "user_id", "session_id", "scope", "data", "delete", "request", "x"]
)
SERVICE_OPS = st.sampled_from(
    ["append", "append.batch", "session.open", "live.write", "live.read", "enrich", "stats"]
)
EVENTS = st.fixed_dictionaries(
    {"record_id": st.text(max_size=5), "user_id": st.sampled_from(["u", "", "../x", "v"])},
    optional={"session_id": st.sampled_from(["s", "t", "."]), "source": st.text(max_size=3)},
)


def _exchange(path: Path, framing: Framing, requests: list[dict[str, Any]]) -> list[Any]:
    writer = FrameWriter(framing)
    reader = FrameReader(1 << 24, framing)
    decode = msgspec.msgpack.decode if framing == "msgpack" else msgspec.json.decode
    last = {"id": "last", "op": "ping"}
    data = b"".join(writer.encode(r) for r in [*requests, last])
    got: list[Any] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(path))
        sock.sendall(data)
        while len(got) < len(requests) + 1:
            chunk = sock.recv(1 << 16)
            assert chunk, "the service closed a connection whose framing was intact"
            reader.feed(chunk)
            got.extend(decode(f) for f in reader.frames())
    return got


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=st.lists(
        st.fixed_dictionaries({"id": st.integers(0, 1000), "op": SERVICE_OPS}).flatmap(
            lambda head: st.dictionaries(
                FIELDS, ANY | EVENTS | st.lists(EVENTS, max_size=3), max_size=3
            ).map(lambda fields: {**fields, **head})
        ),
        min_size=1,
        max_size=6,
    ),
    framing=st.sampled_from(["msgpack", "jsonl"]),
)
def test_fuzzed_service_requests_get_typed_answers_in_order_and_the_service_lives(
    fuzz_root: Path, requests: list[dict[str, Any]], framing: Framing
) -> None:
    path = socket_of(fuzz_root)
    got = _exchange(path, framing, requests)
    for request, answer in zip(requests, got, strict=False):
        assert answer["id"] == request["id"]
        if not answer["ok"]:
            assert answer["error"]["code"] in ERRORS
            assert answer["error"]["code"] != "InternalError", answer
            assert answer["status"] == ERRORS[answer["error"]["code"]].status
    assert got[-1]["result"] == {"pong": True}
    with SyncClient.connect(path, timeout=10) as client:
        ack = client.request("append", event=msgspec.json.decode(event("u", "s", "alive")))
        assert ack["record_id"] == "alive"
        assert client.request("stats")["server"]["errors"].get("InternalError") is None
