"""What the client commands share: where the service is, connecting, input, one-line errors."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from bus import BusError, ConnectionBroken, SyncClient
from contracts import Framing, InvalidRequest

from ._layout import default_socket
from .cli import exit_code_for

__all__ = [
    "DEFAULT_ROOT",
    "NOT_RUNNING",
    "ROOT_ENV",
    "add_target_options",
    "connect",
    "guarded",
    "open_input",
    "read_json_object",
    "root_of",
    "socket_of",
    "write_json",
]

#: The root used when neither ``--root`` nor ``$ACTORBUS_ROOT`` says otherwise.
DEFAULT_ROOT = "actorbus-root"
ROOT_ENV = "ACTORBUS_ROOT"

#: The hint added when nothing listens on the socket.
NOT_RUNNING = "is `actorbus serve` running? see --root and --socket"

_PRETTY = msgspec.json.Encoder(order="deterministic")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--root`` and ``--socket``, the options that say where the service is."""
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the service root (default: ${ROOT_ENV} or ./{DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        metavar="PATH",
        help="the service socket (default: <root>/run/actorbus.sock)",
    )


def root_of(args: argparse.Namespace) -> Path:
    """The root the command works on."""
    root: Path | None = args.root
    if root is None:
        root = Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
    return root


def socket_of(args: argparse.Namespace) -> Path:
    """The socket the command talks to."""
    path: Path | None = args.socket
    return path if path is not None else default_socket(root_of(args))


def connect(
    args: argparse.Namespace, *, framing: Framing = "msgpack", timeout: float | None = 30.0
) -> SyncClient:
    """Connect to the service the options name.

    Raises:
        ConnectionBroken: Nothing listens there; the message says how to start it.
    """
    path = socket_of(args)
    try:
        return SyncClient.connect(path, framing=framing, timeout=timeout)
    except ConnectionBroken as exc:
        raise ConnectionBroken(f"{exc.message} ({NOT_RUNNING})") from exc.__cause__


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report the runtime's own errors (no server, a broken connection) as one line.

    Wire errors (``contracts``) propagate to ``actorbus.cli.main``, which prints
    ``actorbus: <code>: <message>``; these have no wire code worth showing.
    """

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except BusError as exc:
            print(f"actorbus: {exc.message}", file=sys.stderr)
            return exit_code_for(exc)
        except BrokenPipeError:
            # The reader of our output went away (``| head``): not an error of ours.
            # Point stdout at /dev/null so the flush at exit does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0

    return wrapper


def open_input(name: str) -> BinaryIO:
    """The named file, or standard input for ``-``, opened for binary reading.

    Raises:
        InvalidRequest: The file cannot be opened (the OS reason is given).
    """
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")  # the caller closes it
    except OSError as exc:
        raise InvalidRequest(f"cannot read {name}: {exc.strerror}") from None


def read_json_object(name: str, what: str) -> dict[str, Any]:
    """Read one JSON object from a file or standard input.

    Raises:
        InvalidRequest: The input is not one JSON object.
    """
    stream = open_input(name)
    try:
        data = stream.read()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise InvalidRequest(f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"the {what} must be a JSON object")
    return value


def write_json(value: Any, *, pretty: bool = True) -> None:
    """Print ``value`` as JSON on standard output (indented unless ``pretty`` is off)."""
    data = _PRETTY.encode(value)
    if pretty:
        data = msgspec.json.format(data, indent=2)
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()
