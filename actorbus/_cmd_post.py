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

from bus import BusError, SyncClient
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
    """What a post did with each line: acknowledged, failed (by code) or not sent.

    The counts add up: every line read is exactly one of acknowledged (answered 201),
    failed (answered with an error), not sent (refused here: not an event, or over
    the frame bound), or unanswered (sent when the connection broke, no answer).
    """

    def __init__(self, progress: Progress | None = None) -> None:
        self.acknowledged = 0
        self.failed: Counter[str] = Counter()
        self.not_sent: Counter[str] = Counter()
        self.unanswered = 0
        self.listed = 0
        self.seconds = 0.0
        #: The last line number every line up to which has its outcome.
        self.done_through = 0
        self.progress = progress

    @property
    def lines(self) -> int:
        """Lines read: acknowledged + failed + not sent + unanswered."""
        return (
            self.acknowledged
            + sum(self.failed.values())
            + sum(self.not_sent.values())
            + self.unanswered
        )

    def fail(self, line: int, error: ActorbusError, *, sent: bool = True) -> None:
        """Count a failed line; list the first few (the messages are safe, never content)."""
        (self.failed if sent else self.not_sent)[error.code] += 1
        self.listed += 1
        if self.listed <= _LISTED:
            self.say(f"actorbus: line {line}: {error.code}: {error.message}")
        elif self.listed == _LISTED + 1:
            self.say("actorbus: further failures are only counted")

    def say(self, text: str) -> None:
        """A line on stderr, never drawn over the progress bar."""
        if self.progress is not None:
            self.progress.note(text)
        else:
            print(text, file=sys.stderr)

    def exit_code(self) -> int:
        """0 when everything was acknowledged, else the worst failure's status class."""
        codes = set(self.failed) | (set(self.not_sent) & set(ERRORS))
        if not codes:
            return 0
        return max(exit_code_for(ERRORS.get(code, InvalidEvent)()) for code in codes)

    def report(self) -> str:
        """The summary printed at the end."""
        rate = self.acknowledged / self.seconds if self.seconds > 0 else 0.0
        out = (
            f"lines         {self.lines:,} (acknowledged + failed + not sent"
            f"{' + unanswered' if self.unanswered else ''})\n"
            f"acknowledged  {self.acknowledged:,}\n"
            f"failed        {_counted(self.failed)}\n"
            f"not sent      {_counted(self.not_sent)}\n"
        )
        if self.unanswered:
            out += f"unanswered    {self.unanswered:,} (sent; may or may not be recorded)\n"
        return out + f"rate          {rate:,.0f} events/s ({self.seconds:.2f}s)\n"


def _counted(counts: Counter[str]) -> str:
    total = sum(counts.values())
    by_code = ", ".join(f"{code} {count:,}" for code, count in sorted(counts.items()))
    return f"{total:,}{f' ({by_code})' if by_code else ''}"


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
            self.summary.fail(number, InvalidEvent("not valid JSON (not sent)"), sent=False)
            return None
        if line[:1] != b"{":  # the line is stripped
            self.summary.fail(number, InvalidEvent("not a JSON object (not sent)"), sent=False)
            return None
        if len(raw) + _FRAME_OVERHEAD > self.max_frame:
            self.summary.fail(
                number, FrameTooLarge("the event is over --max-frame-bytes (not sent)"), sent=False
            )
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

    def send(self, chunk: list[tuple[int, msgspec.Raw]], last: int) -> None:
        """Send ``chunk`` a window at a time: a broken connection leaves one window unanswered.

        ``last`` is the last line number read.
        """
        summary = self.summary
        for start in range(0, len(chunk), self.window):
            part = chunk[start : start + self.window]
            requests = [("append", {"event": raw}) for _, raw in part]
            try:
                outcomes = self.client.pipeline(requests, window=self.window)
            except BusError:
                summary.unanswered += len(part)
                after = len(chunk) - start - len(part)
                if after:
                    summary.not_sent["read after the break"] += after
                raise
            for (number, _), outcome in zip(part, outcomes, strict=True):
                if isinstance(outcome, ActorbusError):
                    summary.fail(number, outcome)
                else:
                    summary.acknowledged += 1
            summary.done_through = part[-1][0] if start + len(part) < len(chunk) else last


@guarded
def _run(args: argparse.Namespace) -> int:
    stream = open_input(args.file)
    if stream is sys.stdin.buffer and sys.stdin.isatty():
        print(
            "actorbus: reading events from standard input, one JSON object per line "
            "(Ctrl-D ends; give a FILE to post a file)",
            file=sys.stderr,
            flush=True,
        )
    total = _size_of(stream)
    progress = Progress(sys.stderr, 1) if sys.stderr.isatty() else None
    summary = PostSummary(progress)
    broken: BusError | None = None
    try:
        with connect(args, framing="jsonl") as client:
            poster = _Poster(client, args, summary)
            if progress is not None:
                progress.start(0, "posting events")
            start = time.perf_counter()
            try:
                _post(poster, stream, args, total)
            except BusError as exc:
                broken = exc
            summary.seconds = time.perf_counter() - start
    finally:
        if progress is not None:
            progress.finish()
        if stream is not sys.stdin.buffer:
            stream.close()
    if broken is not None:
        print(f"actorbus: {broken.message}", file=sys.stderr)
    sys.stdout.write(summary.report())
    if broken is not None:
        resume = " ".join(
            part for part in ("actorbus post", "" if args.file == "-" else args.file) if part
        )
        print(
            f"actorbus: stopped: every line up to line {summary.done_through:,} has its outcome"
            f" above; resume with `{resume} --skip {summary.done_through}`"
            + (
                f" (the {summary.unanswered:,} unanswered lines are sent again: their"
                " record_id tells a repeat)"
                if summary.unanswered
                else ""
            ),
            file=sys.stderr,
        )
        return exit_code_for(broken)
    if summary.failed.get("MissingSessionPath") and not args.open:
        print(
            "actorbus: hint: MissingSessionPath means the session was never opened; "
            "add --open to open each session first, or run `actorbus session open USER SESSION`",
            file=sys.stderr,
        )
    return summary.exit_code()


def _post(poster: _Poster, stream: BinaryIO, args: argparse.Namespace, total: int) -> None:
    summary = poster.summary
    progress = summary.progress
    chunk: list[tuple[int, msgspec.Raw]] = []
    read = 0
    number = 0
    for number, line in _lines(stream):
        read += len(line) + 1
        if number <= args.skip:
            continue
        raw = poster.check(number, line)
        if raw is not None:
            chunk.append((number, raw))
        if len(chunk) >= args.chunk:
            poster.send(chunk, number)
            chunk = []
            if progress is not None:
                progress.label = f"posted {summary.acknowledged:,} events"
                progress.update(read / total if total else 0.0)
    if chunk:
        poster.send(chunk, number)
    summary.done_through = max(summary.done_through, number)


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
        "--skip",
        type=int,
        default=0,
        metavar="N",
        help="skip the first N lines (to resume after a broken connection; default 0)",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=1 << 20,
        help="the service's max_frame_bytes; longer lines are not sent (default 1 MiB)",
    )
    add_target_options(parser)
    parser.set_defaults(func=_run)
