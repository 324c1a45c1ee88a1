"""HTTP scenarios: our service's HTTP door against the recorder's route on FastAPI.

The peer is the route a recorder's users would otherwise write: FastAPI on uvicorn
(uvloop and httptools when installed), a plain ``def`` route ``POST
/schema-recorder/append`` that opens the session's log, flocks it, writes one line
and closes it per request, answering 201 ``{record_id, recorded_at}``; uvicorn
listens on a Unix socket in a process of its own. Our service runs in its own
process too (``bench/_service.py``), and both are driven by the same clients:

- pipelined: 4 client processes, one keep-alive connection and one session each,
  pre-encoded requests in two windows of 256 in flight; every response is parsed
  by httptools (llhttp) and its status counted. Requests/s from the moment all four
  start to the last answer, the best of three rounds against the same server.
- rtt: one client in this process, one request at a time, the best of five round
  medians (as ``append.socket.rtt_p50_us`` is measured).

A scenario whose answers are not all the expected status fails; it reports no
figure. Run a process alone with ``python -m bench._http peer ROOT SOCKET`` or
``python -m bench._http client SOCKET KIND SESSION COUNT [ETAG]``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httptools

from bench._harness import Context, Measurement, Scenario, Skip, Target
from bench._service import _event, _open, _service
from bench._socket import _percentile, stop_process, wait_for_socket

__all__ = ["SCENARIOS"]

CLIENTS = 4
WINDOW = 256
BULK = 512  # events per POST /v1/events
BULK_WINDOW = 2  # bulk requests in flight per client
ROUNDS = 3  # pipelined rounds per scenario against one server, the best reported
_HEAD = b"POST %s HTTP/1.1\r\nhost: localhost\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
_JSON = b"application/json"
_NDJSON = b"application/x-ndjson"
#: What each kind of request must be answered with.
_EXPECTED = {"append": 201, "bulk": 200, "live": 304}


def _append_request(session: str, record: int) -> bytes:
    body = _event(session, record)
    return _HEAD % (b"/schema-recorder/append", _JSON, len(body)) + body


def _bulk_request(session: str, start: int) -> bytes:
    body = b"".join(_event(session, n) + b"\n" for n in range(start, start + BULK))
    return _HEAD % (b"/v1/events", _NDJSON, len(body)) + body


def _live_request(etag: str) -> bytes:
    return b"GET /v1/live-data HTTP/1.1\r\nhost: localhost\r\nif-none-match: %s\r\n\r\n" % (
        etag.encode()
    )


class _Answers:
    """Counts complete responses by status (llhttp parses them; only the end is a callback).

    With ``lines`` set, each body is kept and its NDJSON lines checked: the line
    count and those that say ``"status":201``.
    """

    def __init__(self, *, lines: bool = False) -> None:
        self.count = 0
        self.statuses: dict[int, int] = {}
        self.lines = 0
        self.lines_ok = 0
        self._body: list[bytes] = []
        if lines:
            self.on_body = self._body.append
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.count += 1
        status = self.parser.get_status_code()
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self._body:
            body = b"".join(self._body)
            self._body.clear()
            self.lines += body.count(b"\n")
            self.lines_ok += body.count(b'{"status":201,')


# ---- the peer ------------------------------------------------------------------------


@contextmanager
def _peer(ctx: Context) -> Iterator[tuple[Path, Path]]:
    """The FastAPI peer in a process of its own; yields its root and socket."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise Skip("the FastAPI peer needs the bench extra: install actorbus[bench]") from None
    root = Path(tempfile.mkdtemp(prefix="ab-peer-", dir="/tmp"))  # AF_UNIX paths are short
    path = root / "peer.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._http", "peer", str(root), str(path)],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(path, proc, "the FastAPI peer", timeout=30)
        yield root, path
    finally:
        stop_process(proc, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _peer_app(root: Path) -> Any:
    """The recorder's route as its users would write it on FastAPI."""
    import fcntl
    from datetime import UTC, datetime

    from fastapi import Body, FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT

    @app.post("/schema-recorder/append", status_code=201)
    def append(event: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 (FastAPI's idiom)
        missing = [f for f in ("record_id", "user_id", "session_id", "source") if f not in event]
        if missing:
            return JSONResponse(
                {"error": {"code": "InvalidEvent", "message": f"missing {missing[0]}"}}, 400
            )
        now = datetime.now(UTC)
        recorded_at = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        directory = root / "logs/users" / event["user_id"] / "sessions"
        directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"recorded_at": recorded_at, "event": event}) + "\n"
        fd = os.open(directory / f"{event['session_id']}.jsonl", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return {"record_id": event["record_id"], "recorded_at": recorded_at}

    return app


def _serve_peer(root: str, path: str) -> None:
    import uvicorn

    # uvicorn picks uvloop and httptools when they are installed, as a user's would.
    uvicorn.run(_peer_app(Path(root)), uds=path, log_level="warning", access_log=False)


# ---- driving ---------------------------------------------------------------------------


def _drive(path: Path, kind: str, per_client: int, etag: str = "") -> dict[str, Any]:
    """4 client processes, one session each; their answers checked; requests/s."""
    sessions = [f"http-{kind}-{n}" for n in range(CLIENTS)]
    args = [sys.executable, "-m", "bench._http", "client", str(path), kind]
    clients = [
        subprocess.Popen(
            [*args, session, str(per_client), etag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for session in sessions
    ]
    try:
        for client in clients:  # each has built its requests and connected
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {kind} client did not start")
        start = time.perf_counter()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        outputs = [client.communicate(timeout=600)[0] for client in clients]
        elapsed = time.perf_counter() - start
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    reports = [json.loads(output) for output in outputs]
    expected = _EXPECTED[kind]
    statuses: dict[int, int] = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[int(status)] = statuses.get(int(status), 0) + count
    answered = sum(r["answered"] for r in reports)
    if answered != per_client * CLIENTS or set(statuses) != {expected}:
        raise RuntimeError(
            f"{kind}: {answered} of {per_client * CLIENTS} requests answered, statuses {statuses}"
        )
    result: dict[str, Any] = {"requests": answered, "elapsed_s": elapsed, "statuses": statuses}
    if kind == "bulk":
        lines = sum(r["lines"] for r in reports)
        ok = sum(r["lines_ok"] for r in reports)
        if lines != ok or ok != answered * BULK:
            raise RuntimeError(f"bulk: {ok} of {lines} lines are 201, {answered * BULK} sent")
        result["events"] = ok
    return result


def _rtts(path: Path, request: bytes, count: int, warmup: int) -> list[float]:
    """Sequential round trips of ``request``; each answer parsed whole and its status checked."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.fspath(path))
    answers = _Answers()
    feed = answers.parser.feed_data
    samples: list[float] = []
    clock = time.perf_counter_ns
    try:
        for i in range(warmup + count):
            t0 = clock()
            sock.sendall(request)
            while answers.count <= i:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                feed(chunk)
            if i >= warmup:
                samples.append((clock() - t0) / 1000)
    finally:
        sock.close()
    if set(answers.statuses) != {201}:
        raise RuntimeError(f"round trips answered with statuses {answers.statuses}")
    samples.sort()
    return samples


def _rtt_rounds(path: Path, request: bytes, count: int, ctx: Context) -> Measurement:
    rounds = 5
    medians: list[float] = []
    p99s: list[float] = []
    for i in range(rounds):
        samples = _rtts(path, request, count, warmup=count // 10)
        medians.append(round(_percentile(samples, 0.50), 2))
        p99s.append(round(_percentile(samples, 0.99), 2))
        ctx.progress((i + 1) / rounds)
    best = medians.index(min(medians))
    return Measurement(
        medians[best],
        "us",
        {
            "p99_us": p99s[best],
            "round_medians_us": medians,
            "request_bytes": len(request),
            "round_trips": rounds * count,
        },
    )


def _rounds(path: Path, kind: str, per_client: int, etag: str = "") -> dict[str, Any]:
    """The best of ``ROUNDS`` drives against one server (interference only ever lowers)."""
    results = [_drive(path, kind, per_client, etag) for _ in range(ROUNDS)]
    rates = [r["requests"] / r["elapsed_s"] for r in results]
    best = results[rates.index(max(rates))]
    return {**best, "runs": [round(rate) for rate in rates]}


def _pipelined(result: dict[str, Any], extra: dict[str, Any]) -> Measurement:
    return Measurement(
        round(result["requests"] / result["elapsed_s"]),
        "requests/s",
        {"clients": CLIENTS, "requests": result["requests"], "runs": result["runs"], **extra},
    )


# ---- the scenarios -------------------------------------------------------------------------


def peer_pipelined(ctx: Context) -> Measurement:
    per_client = ctx.scale(1_000, 300)
    with _peer(ctx) as (_, path):
        result = _rounds(path, "append", per_client)
    return _pipelined(result, {"window": WINDOW, "server": "fastapi+uvicorn"})


def peer_rtt(ctx: Context) -> Measurement:
    with _peer(ctx) as (_, path):
        return _rtt_rounds(path, _append_request("rtt", 0), ctx.scale(2_000, 200), ctx)


def http_pipelined(ctx: Context) -> Measurement:
    per_client = ctx.scale(30_000, 8_000)
    with _service(ctx) as path:
        _open(path, [f"http-append-{n}" for n in range(CLIENTS)])
        result = _rounds(path, "append", per_client)
    return _pipelined(result, {"window": WINDOW})


def http_bulk(ctx: Context) -> Measurement:
    requests = ctx.scale(60, 8)
    with _service(ctx) as path:
        _open(path, [f"http-bulk-{n}" for n in range(CLIENTS)])
        result = _rounds(path, "bulk", requests)
    rates = [round(rate * BULK) for rate in result["runs"]]
    return Measurement(
        round(result["events"] / result["elapsed_s"]),
        "events/s",
        {"clients": CLIENTS, "events": result["events"], "per_request": BULK, "runs": rates},
    )


def http_rtt(ctx: Context) -> Measurement:
    with _service(ctx) as path:
        _open(path, ["rtt"])
        return _rtt_rounds(path, _append_request("rtt", 0), ctx.scale(4_000, 400), ctx)


def http_not_modified(ctx: Context) -> Measurement:
    per_client = ctx.scale(20_000, 2_000)
    with _service(ctx) as path:
        # A document as a producer would have written it: <root>/data/live-data.json.
        data = path.parent.parent / "data"
        data.mkdir(exist_ok=True)
        (data / "live-data.json").write_bytes(json.dumps(_DOCUMENT).encode())
        etag = _etag(path)
        result = _rounds(path, "live", per_client, etag)
    return _pipelined(result, {"window": WINDOW})


_DOCUMENT = {
    "schema_version": 1,
    "hosts": {f"web-{n}": {"load": n} for n in range(8)},
    "extensions": {"items": {}},
}


def _etag(path: Path) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.fspath(path))
    headers: dict[bytes, bytes] = {}

    class _One:
        done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            headers[name.lower()] = value

        def on_message_complete(self) -> None:
            self.done = True

    one = _One()
    parser = httptools.HttpResponseParser(one)
    try:
        sock.sendall(b"GET /v1/live-data HTTP/1.1\r\nhost: localhost\r\n\r\n")
        while not one.done:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the service closed the connection")
            parser.feed_data(chunk)
    finally:
        sock.close()
    if parser.get_status_code() != 200 or b"etag" not in headers:
        raise RuntimeError(f"GET /v1/live-data gave {parser.get_status_code()} and no ETag")
    return headers[b"etag"].decode()


SCENARIOS: list[Scenario] = [
    Scenario(
        "peer.fastapi.append.pipelined",
        peer_pipelined,
        baseline=True,
        doc="The recorder's route on FastAPI + uvicorn (a plain def route: open, flock, "
        "write one line, close per request) on a Unix socket; 4 pipelining client processes.",
    ),
    Scenario(
        "peer.fastapi.append.rtt_p50_us",
        peer_rtt,
        baseline=True,
        doc="The same FastAPI route, one request at a time, median round trip.",
    ),
    Scenario(
        "http.append.pipelined",
        http_pipelined,
        target=Target("peer.fastapi.append.pipelined", 10.0, "higher"),
        also=(Target("append.socket.pipelined", 0.5, "higher"),),
        doc="4 client processes, keep-alive, pipelined POST /schema-recorder/append to the "
        "service's Unix socket (two windows of 256 in flight each).",
    ),
    Scenario(
        "http.events.bulk",
        http_bulk,
        target=Target("append.socket.pipelined", 1.0, "higher"),
        doc="4 client processes, NDJSON POST /v1/events of 512 events each, two in flight; "
        "events/s, every line checked for 201.",
    ),
    Scenario(
        "http.append.rtt_p50_us",
        http_rtt,
        target=Target("append.socket.rtt_p50_us", 1.5, "lower"),
        also=(Target("peer.fastapi.append.rtt_p50_us", 0.5, "lower"),),
        doc="One client, one POST /schema-recorder/append at a time, median round trip.",
    ),
    Scenario(
        "http.live_data.not_modified",
        http_not_modified,
        doc="4 client processes pipelining conditional GET /v1/live-data (If-None-Match): "
        "304 answers per second (reported, no target).",
    ),
]


# ---- the client process ----------------------------------------------------------------------


def _windows(kind: str, session: str, count: int, etag: str) -> list[tuple[int, bytes]]:
    if kind == "bulk":
        return [(1, _bulk_request(session, n * BULK)) for n in range(count)]
    windows = []
    for start in range(0, count, WINDOW):
        size = min(count, start + WINDOW) - start
        if kind == "live":
            blob = _live_request(etag) * size
        else:
            blob = b"".join(_append_request(session, n) for n in range(start, start + size))
        windows.append((size, blob))
    return windows


def _client(path: str, kind: str, session: str, count: int, etag: str) -> int:
    """Pipeline ``count`` requests; print what answered them, as JSON."""
    windows = _windows(kind, session, count, etag)
    in_flight = BULK_WINDOW - 1 if kind == "bulk" else WINDOW
    answers = _Answers(lines=kind == "bulk")
    feed = answers.parser.feed_data
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    print("ready", flush=True)
    sys.stdin.readline()
    sent = 0
    next_window = 0
    while answers.count < count:
        # Keep two windows in flight: a fresh one as soon as one is answered.
        while next_window < len(windows) and sent - answers.count <= in_flight:
            size, blob = windows[next_window]
            sock.sendall(blob)
            sent += size
            next_window += 1
        chunk = sock.recv(1 << 18)
        if not chunk:
            break
        feed(chunk)
    sock.close()
    report = {
        "answered": answers.count,
        "statuses": answers.statuses,
        "lines": answers.lines,
        "lines_ok": answers.lines_ok,
    }
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "client":
        etag = argv[5] if len(argv) > 5 else ""
        return _client(argv[1], argv[2], argv[3], int(argv[4]), etag)
    _serve_peer(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
