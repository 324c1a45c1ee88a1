"""``actorbus export USER SESSION``: a session's log as the JSON Lines a file would hold.

It reads the storage directly (no running service needed): the files under the
root, or JetStream with ``--backend``/``[storage]``. What it writes is byte for
byte what a file-backed service holds in the session's log: every envelope line
acknowledged so far, each ending in a newline.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from bus import run
from contracts import Config, InvalidRequest

from ._cmd_common import DEFAULT_ROOT, ROOT_ENV, guarded, root_of
from ._cmd_serve import read_config, with_backend

__all__ = ["register"]

#: Bytes gathered before one write to the output.
_FLUSH_BYTES = 1 << 20


async def _export(root: Path, config: Config, user: str, session: str, out: BinaryIO) -> int:
    from ._service import open_service  # the actors load only when a command needs them

    async with open_service(root, config, listen=False) as service:
        pending: list[bytes] = []
        size = 0
        async for line in service.recorder.replay(user, session):
            pending.append(line + b"\n")
            size += len(line) + 1
            if size >= _FLUSH_BYTES:
                await anyio.to_thread.run_sync(out.writelines, pending)
                pending, size = [], 0
        await anyio.to_thread.run_sync(out.writelines, pending)
        await anyio.to_thread.run_sync(out.flush)
    return 0


@guarded
def _run(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    if args.backend is not None:
        config = with_backend(config, args.backend)
    if args.output is None:
        code: int = run(_export, root_of(args), config, args.user, args.session, sys.stdout.buffer)
        return code
    target: Path = args.output
    partial = target.with_name(f".{target.name}.partial")
    try:
        out = partial.open("wb")
    except OSError as exc:
        raise InvalidRequest(f"cannot write {target}: {exc.strerror}") from None
    try:
        with out:
            code = run(_export, root_of(args), config, args.user, args.session, out)
            os.fsync(out.fileno())
        os.replace(partial, target)  # whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    return code


def register(subparsers: Any) -> None:
    """Add the ``export`` command."""
    parser = subparsers.add_parser(
        "export",
        help="write a session's log as JSON Lines, from files or JetStream",
        description=(
            "Write every envelope line of a session, as a file-backed service holds it "
            "in its log, to standard output or -o FILE. Reads the storage directly: "
            "the files under --root, or JetStream (--backend nats://HOST:PORT or [storage])."
        ),
    )
    parser.add_argument("user", metavar="USER", help="the user id")
    parser.add_argument("session", metavar="SESSION", help="the session id")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the service root (default: ${ROOT_ENV} or ./{DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE.toml", help="the configuration file"
    )
    parser.add_argument(
        "--backend",
        default=None,
        metavar="files|nats://HOST:PORT",
        help="read files under the root, or JetStream at this URL (overrides [storage])",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write here (whole or not at all) instead of standard output",
    )
    parser.set_defaults(func=_run)
