"""The ``actorbus`` command line.

Each area registers its subcommands from its own module (``COMMAND_MODULES``);
a module exposes ``register(subparsers)`` which adds parsers whose ``func``
default takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence

from contracts import ActorbusError

from ._version import __version__

__all__ = ["COMMAND_MODULES", "build_parser", "exit_code_for", "log_formatter", "main"]

COMMAND_MODULES: list[str] = [
    "actorbus._cmd_bench",
    "actorbus._cmd_demo",
    "actorbus._cmd_serve",
    "actorbus._cmd_post",
    "actorbus._cmd_ops",
    "actorbus._cmd_export",
]


def exit_code_for(error: ActorbusError) -> int:
    """The process exit code for an error: its status class (4xx -> 4, 5xx -> 5)."""
    return max(1, error.status // 100)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="actorbus",
        description="An actor-style event bus: session recording, live data, cached enrichment.",
    )
    parser.add_argument("--version", action="version", version=f"actorbus {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def log_formatter() -> logging.Formatter:
    """Log lines as ``2026-12-03T10:26:20.123Z actorbus: INFO actorbus.server: ...`` (UTC)."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ actorbus: %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    return formatter


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors are one line on stderr and a mapped exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    root = logging.getLogger()
    if not root.handlers:
        # One handler however often main runs in a process (tests, embedding), so no
        # line is written twice.
        handler = logging.StreamHandler()
        handler.setFormatter(log_formatter())
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
    except ActorbusError as exc:
        print(f"actorbus: {exc.code}: {exc.message}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("actorbus: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
