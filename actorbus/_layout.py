"""The on-disk layout of a service root (``docs/runbook.md``), without importing the service."""

from __future__ import annotations

from pathlib import Path

from contracts import InvalidRequest

__all__ = ["LAYOUT", "MAX_SOCKET_PATH_BYTES", "default_socket", "make_layout"]

#: The directories a root holds; session directories are made only by
#: ``session.open``. The private ones are made 0700.
LAYOUT: tuple[tuple[str, int], ...] = (
    ("logs/users", 0o700),
    ("data", 0o755),
    ("locks", 0o700),
    ("cache", 0o700),
    ("run", 0o700),
)

#: The longest path a Unix socket can bind on Linux (``sun_path`` less its NUL).
MAX_SOCKET_PATH_BYTES = 107


def default_socket(root: Path) -> Path:
    """The socket path a root uses unless told otherwise: ``<root>/run/actorbus.sock``."""
    return root / "run" / "actorbus.sock"


def make_layout(root: Path) -> None:
    """Create the root's directories that are missing (blocking: run it in a thread).

    Raises:
        InvalidRequest: A directory cannot be created (the OS reason, never the path).
    """
    for relative, mode in LAYOUT:
        try:
            (root / relative).mkdir(mode=mode, parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            message = f"cannot create the root's {relative} directory: {reason}"
            raise InvalidRequest(message) from None
