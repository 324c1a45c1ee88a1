"""``actorbus post``: events from a JSON Lines file or stdin, pipelined to the service.

Each line is sent as it is (JSON Lines framing keeps its bytes exactly), many
requests in flight at once; the answers come back in order, so each outcome is
matched to its line. A line that is not one JSON object is reported by its number
(never its content) and not sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

import msgspec

from bus import SyncClient
from contracts import ERRORS, ActorbusError, FrameTooLarge, InvalidEvent

from ._cmd_common import add_target_options, connect, guarded, open_input
from ._progress import Progress
from .cli import exit_code_for

__all__ = ["PostSummary", "register"]

#: Lines whose failures are listed one by one; the rest are only counted.
_LISTED = 20
# The bytes a request adds around the event: {"id":N,"op":"append","event":...}\n
_FRAME_OVERHEAD = 64


class _Ids(msgspec.Struct):
    user_id: Any = None
    session_id: Any = None


_IDS = msgspec.json.Decoder(_Ids)


class PostSummary:
    """What a post did: lines sent, acknowledged, failed by code, and how fast."""

    def __init__(self) -> None:
        self.sent = 0
        self.acknowledged = 0
        self.failed: Counter[str] = Counter()
        self.listed = 0
        self.seconds = 0.0

    def fail(self, line: int, error: ActorbusError) -> None:
        """Count a failed line; list the first few (the messages are safe, never content)."""
        self.failed[error.code] += 1
        self.listed += 1
        if self.listed <= _LISTED:
            print(f"actorbus: line {line}: {error.code}: {error.message}", file=sys.stderr)
        elif self.listed == _LISTED + 1:
            print("actorbus: further failures are only counted", file=sys.stderr)

    def exit_code(self) -> int:
        """0 when everything was acknowledged, else the worst failure's status class."""
        if not self.failed:
            return 0
        return max(exit_code_for(ERRORS.get(code, InvalidEvent)()) for code in self.failed)

    def report(self) -> str:
        """The summary printed at the end."""
        failed = sum(self.failed.values())
        by_code = ", ".join(f"{code} {count:,}" for code, count in sorted(self.failed.items()))
        rate = self.acknowledged / self.seconds if self.seconds > 0 else 0.0
        return (
            f"sent          {self.sent:,}\n"
            f"acknowledged  {self.acknowledged:,}\n"
            f"failed        {failed:,}{f' ({by_code})' if by_code else ''}\n"
            f"rate          {rate:,.0f} events/s ({self.seconds:.2f}s)\n"
        )


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, 1):
        line = line.strip()
        if line:
            yield number, line


def _size_of(stream: BinaryIO) -> int:
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class _Poster:
    def __init__(self, client: SyncClient, args: argparse.Namespace, summary: PostSummary) -> None:
        self.client = client
        self.window: int = args.window
        self.max_frame: int = args.max_frame_bytes
        self.open_sessions: bool = args.open
        self.opened: set[tuple[str, str]] = set()
        self.summary = summary

    def check(self, number: int, line: bytes) -> msgspec.Raw | None:
        """The line as an event to send, or ``None`` (counted as failed) if it cannot be one."""
        try:
            raw = msgspec.json.decode(line, type=msgspec.Raw)
        except (msgspec.DecodeError, RecursionError):
            self.summary.fail(number, InvalidEvent("not valid JSON (not sent)"))
            return None
        if line[:1] != b"{":  # the line is stripped
            self.summary.fail(number, InvalidEvent("not a JSON object (not sent)"))
            return None
        if len(raw) + _FRAME_OVERHEAD > self.max_frame:
            self.summary.fail(number, FrameTooLarge("the event is over --max-frame-bytes"))
            return None
        if self.open_sessions:
            self._open(line)
        return raw

    def _open(self, line: bytes) -> None:
        try:
            ids = _IDS.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return
        key = (ids.user_id, ids.session_id)
        if type(key[0]) is not str or type(key[1]) is not str or key in self.opened:
            return
        self.opened.add(key)
        # An unsafe id fails here too; its append is then refused with the reason.
        with contextlib.suppress(ActorbusError):
            self.client.request("session.open", user_id=key[0], session_id=key[1])

    def send(self, chunk: list[tuple[int, msgspec.Raw]]) -> None:
        requests = [("append", {"event": raw}) for _, raw in chunk]
        outcomes = self.client.pipeline(requests, window=self.window)
        summary = self.summary
        summary.sent += len(chunk)
        for (number, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, ActorbusError):
                summary.fail(number, outcome)
            else:
                summary.acknowledged += 1


@guarded
def _run(args: argparse.Namespace) -> int:
    stream = open_input(args.file)
    summary = PostSummary()
    total = _size_of(stream)
    progress = Progress(sys.stderr, 1) if sys.stderr.isatty() else None
    try:
        with connect(args, framing="jsonl") as client:
            poster = _Poster(client, args, summary)
            if progress is not None:
                progress.start(0, "posting events")
            start = time.perf_counter()
            chunk: list[tuple[int, msgspec.Raw]] = []
            read = 0
            for number, line in _lines(stream):
                read += len(line) + 1
                raw = poster.check(number, line)
                if raw is not None:
                    chunk.append((number, raw))
                if len(chunk) >= args.chunk:
                    poster.send(chunk)
                    chunk = []
                    if progress is not None:
                        progress.label = f"posted {summary.sent:,} events"
                        progress.update(read / total if total else 0.0)
            if chunk:
                poster.send(chunk)
            summary.seconds = time.perf_counter() - start
    finally:
        if progress is not None:
            progress.finish()
        if stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.write(summary.report())
    return summary.exit_code()


def register(subparsers: Any) -> None:
    """Add the ``post`` command."""
    parser = subparsers.add_parser(
        "post",
        help="append events from a JSON Lines file or stdin, pipelined",
        description=(
            "Append one event per line (JSON objects, kept byte for byte) to their sessions, "
            "many requests in flight at once; print a summary. Exits non-zero if any line "
            "failed; failed lines are named by number, never by content."
        ),
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="default: stdin")
    parser.add_argument(
        "--open", action="store_true", help="open each session first (session.open)"
    )
    parser.add_argument(
        "--window", type=int, default=256, help="requests in flight at once (default 256)"
    )
    parser.add_argument(
        "--chunk", type=int, default=4096, help="lines read between progress updates"
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=1 << 20,
        help="the service's max_frame_bytes; longer lines are not sent (default 1 MiB)",
    )
    add_target_options(parser)
    parser.set_defaults(func=_run)
