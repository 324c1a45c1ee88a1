"""What may leave enrichment in a report or enter the cache: bounded, checked text.

A provider's summary is cached and reported, so it is bounded to
``max_summary_bytes`` and refused when it carries a credential or a private path
(the service root, a home directory). A provider's own error text is shown only
when it passes the same check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["bounded", "is_safe", "safe_summary"]

_UNSAFE = re.compile(
    r"AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?i:\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{12,})"
    r"|\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"
    r"|\b[rs]k_live_[A-Za-z0-9]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|/home/[^/\s]+/|/root/|/Users/[^/\s]+/|(?i:[a-z]:\\users\\[^\\\s]+\\)|~/"
)

# Literal pieces every match of _UNSAFE contains (lower-cased): a text holding
# none of them cannot match, and checking them is far cheaper than the pattern.
_MARKERS = (
    "akia", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_", "xox", "eyj",
    "-----begin", "bearer", "basic", "sk-", "k_live_", "aiza",
    "/home/", "/root/", "/users/", ":\\users\\", "~/",
)  # fmt: skip

_ELLIPSIS = "\u2026"


def is_safe(text: str, private: Sequence[str]) -> bool:
    """Whether ``text`` carries no credential format and none of the ``private`` strings."""
    low = text.lower()
    if any(marker in low for marker in _MARKERS) and _UNSAFE.search(text) is not None:
        return False
    return not any(p and p in text for p in private)


def bounded(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes at a character boundary.

    A cut text ends with an ellipsis, so a reader can tell it was shortened.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    room = max(0, max_bytes - len(_ELLIPSIS.encode()))
    return data[:room].decode("utf-8", "ignore") + (_ELLIPSIS if max_bytes >= 3 else "")


def safe_summary(value: object, max_bytes: int, private: Sequence[str]) -> str | None:
    """The summary to cache and report, or ``None`` when it is unusable or unsafe."""
    if not isinstance(value, str) or (not value.isprintable() and _has_surrogate(value)):
        return None
    text = bounded(value, max_bytes)
    return text if is_safe(text, private) else None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
