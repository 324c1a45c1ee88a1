"""The one-request commands: ``session open``, ``tail``, ``live write|read``, ``enrich``, ``stats``.

Each talks to a running service over its socket (``actorbus serve``), prints the
result on standard output and any error as one line on standard error.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

import msgspec

from bus import ConnectionBroken, FrameReader, FrameWriter
from contracts import OP_EVENT, OP_SUBSCRIBE, LiveDataInvalid, error_from_wire

from ._cmd_common import (
    NOT_RUNNING,
    add_target_options,
    connect,
    guarded,
    read_json_object,
    socket_of,
    write_json,
)
from ._metrics import human_table, prometheus_text
from .cli import exit_code_for

__all__ = ["register"]


@guarded
def _session_open(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.request("session.open", user_id=args.user, session_id=args.session)
    state = "created" if result.get("created") else "already existed"
    print(f"session {args.user}/{args.session} {state}")
    return 0


class _Message(msgspec.Struct):
    # A stream message or the response that ends it; ``data`` stays as the server
    # wrote it, so an envelope is printed byte for byte as it is on disk.
    op: str | None = None
    id: Any = None
    ok: bool = False
    data: msgspec.Raw = msgspec.Raw(b"")
    result: msgspec.Raw = msgspec.Raw(b"")
    error: dict[str, Any] | None = None


def _stream(args: argparse.Namespace, fields: dict[str, Any]) -> Iterator[bytes | int]:
    """The envelope lines a ``subscribe`` streams, byte for byte, then its event count."""
    path = socket_of(args)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ConnectionBroken(f"cannot connect to {path}: {exc.strerror} ({NOT_RUNNING})") from exc
    reader = FrameReader(64 << 20, "jsonl")
    decode = msgspec.json.Decoder(_Message).decode
    with sock:
        sock.sendall(FrameWriter("jsonl").encode({"id": 1, "op": OP_SUBSCRIBE, **fields}))
        while True:
            data = sock.recv(1 << 18)
            if not data:
                raise ConnectionBroken("the service closed the connection")
            reader.feed(data)
            for frame in reader.frames():
                message = decode(frame)
                if message.op == OP_EVENT:
                    yield bytes(message.data)
                    continue
                if message.ok:
                    yield int(msgspec.json.decode(message.result or b"{}").get("events", 0))
                    return
                error = message.error or {}
                raise error_from_wire(str(error.get("code")), str(error.get("message", "")))


@guarded
def _tail(args: argparse.Namespace) -> int:
    """Print the last ``-n`` envelope lines (or all with ``--from-start``); ``-f`` follows."""
    ids = {"user_id": args.user, "session_id": args.session}
    out = sys.stdout.buffer
    if args.from_start and args.follow:
        for line in _stream(args, {**ids, "from_start": True, "follow": True}):
            if isinstance(line, bytes):
                out.write(line + b"\n")
                out.flush()
        return 0
    # What is recorded now: all of it, or its last lines.
    last: deque[bytes] | list[bytes] = [] if args.from_start else deque(maxlen=args.lines)
    count = 0
    for line in _stream(args, {**ids, "follow": False}):
        if isinstance(line, bytes):
            if args.from_start:
                out.write(line + b"\n")
            elif args.lines:
                last.append(line)
        else:
            count = line
    out.writelines(line + b"\n" for line in last)
    out.flush()
    if not args.follow:
        return 0
    # Then what lands after it: the log only grows, so the first ``count`` lines of a
    # stream from the start are exactly the ones already printed.
    seen = 0
    for line in _stream(args, {**ids, "from_start": True, "follow": True}):
        if isinstance(line, bytes):
            seen += 1
            if seen > count:
                out.write(line + b"\n")
                out.flush()
    return 0


@guarded
def _live_write(args: argparse.Namespace) -> int:
    data = read_json_object(args.file, "live-data document")
    with connect(args) as client:
        result = client.request("live.write", scope=args.scope, data=data, delete=args.delete)
    write_json(result)
    return 0


@guarded
def _live_read(args: argparse.Namespace) -> int:
    with connect(args) as client:
        try:
            result = client.request("live.read")
        except LiveDataInvalid as exc:
            if "no valid base" in exc.message:
                # A fresh root: nothing was written yet, so there is nothing to read.
                print(f"actorbus: {exc.code}: {exc.message}", file=sys.stderr)
                print(
                    "actorbus: hint: no document was written yet; write the whole document "
                    "first with `actorbus live write full FILE` (scope full)",
                    file=sys.stderr,
                )
                return exit_code_for(exc)
            raise
    write_json(result["data"])
    return 0


@guarded
def _enrich(args: argparse.Namespace) -> int:
    request = read_json_object(args.file, "enrich request")
    with connect(args, timeout=args.timeout) as client:
        report = client.request("enrich", request=request)
    write_json(report)
    counts = report.get("counts", {})
    run = report.get("spend", {}).get("run", {})
    print(
        f"actorbus: {len(report.get('items', []))} items: {counts.get('hits', 0)} hits, "
        f"{counts.get('written', 0)} written, {counts.get('skipped', 0)} skipped; spent "
        f"${run.get('usd', 0):.4f} ({run.get('state', '?')}), saved ${run.get('saved_usd', 0):.4f}",
        file=sys.stderr,
    )
    return 0


@guarded
def _stats(args: argparse.Namespace) -> int:
    with connect(args) as client:
        stats = client.request("stats")
    if args.format == "json":
        write_json(stats)
    elif args.format == "prometheus":
        sys.stdout.write(prometheus_text(stats))
    else:
        sys.stdout.write(human_table(stats))
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number >= 0") from None
    if value < 0 or value > 10_000_000:
        raise argparse.ArgumentTypeError("must be a whole number from 0 to 10000000")
    return value


def register(subparsers: Any) -> None:
    """Add ``session``, ``tail``, ``live``, ``enrich`` and ``stats``."""
    session = subparsers.add_parser(
        "session", help="manage sessions", description="Manage recording sessions."
    )
    session_sub = session.add_subparsers(dest="action", metavar="ACTION", required=True)
    opener = session_sub.add_parser(
        "open",
        help="create a session's directory (the only way one is created)",
        description="Open a session so events can be appended to it; opening twice is fine.",
    )
    opener.add_argument("user", metavar="USER", help="the user id")
    opener.add_argument("session", metavar="SESSION", help="the session id")
    add_target_options(opener)
    opener.set_defaults(func=_session_open)

    tail = subparsers.add_parser(
        "tail",
        help="print a session's recorded envelopes",
        description=(
            "Print a session's last envelope lines as recorded (-n, default 10; "
            "--from-start for all); -f then keeps following."
        ),
    )
    tail.add_argument("user", metavar="USER", help="the user id")
    tail.add_argument("session", metavar="SESSION", help="the session id")
    tail.add_argument(
        "-f", "--follow", action="store_true", help="then print new envelopes as they land"
    )
    tail.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=10,
        metavar="N",
        help="print the last N envelopes recorded (default 10)",
    )
    tail.add_argument(
        "--from-start", action="store_true", help="print every envelope recorded, not the last N"
    )
    add_target_options(tail)
    tail.set_defaults(func=_tail)

    live = subparsers.add_parser(
        "live", help="write or read the live-data document", description="Live data."
    )
    live_sub = live.add_subparsers(dest="action", metavar="ACTION", required=True)
    writer = live_sub.add_parser(
        "write",
        help="write the branches a scope owns",
        description=(
            "Write a JSON document shaped like the whole live-data document, holding only "
            "the branches SCOPE owns (full, host-local, trend-finder or a configured scope)."
        ),
    )
    writer.add_argument("scope", metavar="SCOPE", help="the writing scope")
    writer.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="default: stdin")
    writer.add_argument(
        "--delete", action="store_true", help="remove owned branches the document leaves out"
    )
    add_target_options(writer)
    writer.set_defaults(func=_live_write)
    reader = live_sub.add_parser(
        "read", help="print the current document", description="Print the live-data document."
    )
    add_target_options(reader)
    reader.set_defaults(func=_live_read)

    enrich = subparsers.add_parser(
        "enrich",
        help="run an enrichment request and print its report",
        description="Send an enrich request (JSON, see docs/enrichment.md) and print the report.",
    )
    enrich.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="default: stdin")
    enrich.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the report"
    )
    add_target_options(enrich)
    enrich.set_defaults(func=_enrich)

    stats = subparsers.add_parser(
        "stats",
        help="print the service's counters",
        description="Print the server's, the actors' and the service's counters.",
    )
    formats = stats.add_mutually_exclusive_group()
    formats.add_argument(
        "--json", dest="format", action="store_const", const="json", help="the raw result"
    )
    formats.add_argument(
        "--prometheus",
        dest="format",
        action="store_const",
        const="prometheus",
        help="Prometheus text exposition format",
    )
    stats.set_defaults(format="table")
    add_target_options(stats)
    stats.set_defaults(func=_stats)
