"""``actorbus serve``: the service on its Unix socket until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bus import run
from contracts import Config, ConfigError, load_config

from ._cmd_common import add_target_options, guarded, root_of, socket_of

__all__ = ["read_config", "register", "with_backend"]


def read_config(path: Path | None) -> Config:
    """The configuration in ``path`` (the defaults when ``None``).

    Raises:
        ConfigError: The file cannot be read, or a key is unknown or outside its
            range (the message names the file, the key and the range).
    """
    if path is None:
        return Config()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    return load_config(data, str(path))


def with_backend(config: Config, backend: str) -> Config:
    """``config`` with the storage ``--backend`` names: ``files``, or a ``nats://`` URL.

    Raises:
        ConfigError: ``backend`` is neither.
    """
    if backend == "files":
        storage = msgspec.structs.replace(config.storage, backend="files")
    elif backend.startswith(("nats://", "tls://")):
        jetstream = msgspec.structs.replace(config.storage.jetstream, servers=[backend])
        storage = msgspec.structs.replace(config.storage, backend="jetstream", jetstream=jetstream)
    else:
        raise ConfigError("--backend must be files or a nats:// URL of a JetStream server")
    return msgspec.structs.replace(config, storage=storage)


def _say(text: str) -> None:
    """A status line, stamped like the log's lines (UTC), whatever ``--log-level`` says."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    print(f"{stamp}.{int(now % 1 * 1000):03d}Z actorbus: {text}", file=sys.stderr, flush=True)


async def _serve(root: Path, config: Config, path: Path) -> int:
    from ._service import open_service  # the actors load only when a command needs them

    async with open_service(root, config, path) as service:
        _say(f"serving {root} on {path} (pid {os.getpid()}); SIGTERM or Ctrl-C stops it")
        if service.http is not None and service.http.listening is not None:
            # The bound address (a port of 0 picks one), for people and for scripts.
            _say(f"HTTP on http://{service.http.listening}/")
        # The server logs the signal it received; saying it again here doubled the line.
        await service.wait_for_signal()
    _say("stopped")
    return 0


@guarded
def _run(args: argparse.Namespace) -> int:
    logging.getLogger("actorbus").setLevel(args.log_level.upper())
    config = read_config(args.config)
    if args.http is not None:
        http = msgspec.structs.replace(config.http, listen=args.http)
        config = msgspec.structs.replace(config, http=http)
    if args.backend is not None:
        config = with_backend(config, args.backend)
    code: int = run(_serve, root_of(args), config, socket_of(args))
    return code


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the service on its Unix socket until SIGTERM or SIGINT",
        description=(
            "Run the service: session recording, live data and cached enrichment behind a "
            "Unix socket (mode 0600). Creates the root's layout if missing. On SIGTERM or "
            "SIGINT it stops accepting, answers every request it read, drains the actors, "
            "removes the socket and exits 0. A second server on a live socket exits non-zero."
        ),
    )
    add_target_options(parser)
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE.toml", help="the configuration file"
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help=(
            "also serve HTTP on this TCP address (loopback unless [http] allow_remote; "
            "overrides [http] listen); the Unix socket always answers HTTP"
        ),
    )
    parser.add_argument(
        "--backend",
        default=None,
        metavar="files|nats://HOST:PORT",
        help=(
            "where state lives: files under the root (the default), or NATS JetStream at this "
            "URL (overrides [storage]; docs/scale-out.md)"
        ),
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="how much the service logs on stderr (default: info)",
    )
    parser.set_defaults(func=_run)
