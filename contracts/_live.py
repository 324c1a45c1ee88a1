"""The live-data contract: the default document shape and the outcome of a write.

The document is ``<root>/data/live-data.json``, read by a browser dashboard. The
default contract (``docs/protocol.md``) fixes two root keys, ``schema_version`` and
``extensions``; every other root key is a host-local branch (any JSON object). The
Structs here are *open* (unknown fields are not forbidden): an extension item carries
*at least* ``status`` and ``updated_at``, and the validator checks that decoding adds
or changes nothing, so extra fields pass through untouched. A deployment may supply
its own msgspec type instead of :class:`LiveDocument`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ._base import Base

__all__ = [
    "ExtensionItem",
    "ExtensionStatus",
    "LiveBase",
    "LiveDocument",
    "LiveExtensions",
    "LiveWriteResult",
    "LockRelease",
]

#: The health an extension reports on the dashboard.
ExtensionStatus = Literal["ok", "degraded", "blocked", "offline"]

#: Which base a write merged into: the current file, the example fallback, or none
#: (a ``full`` write replaces the whole document).
LiveBase = Literal["current", "example", "none"]

#: How the generated-data lock was released after the write: ``mismatch`` means the
#: record on disk carried another token (left in place and reported), ``missing``
#: that it had been removed by someone else.
LockRelease = Literal["released", "mismatch", "missing"]


class ExtensionItem(msgspec.Struct, frozen=True):
    """One extension's entry under ``extensions.items``; other fields are allowed."""

    status: ExtensionStatus
    updated_at: Annotated[str, msgspec.Meta(min_length=1)]


class LiveExtensions(msgspec.Struct, frozen=True):
    """The ``extensions`` branch: a map of extension id to its entry."""

    items: dict[str, ExtensionItem]


class LiveDocument(msgspec.Struct, frozen=True):
    """The default live-data contract.

    Attributes:
        schema_version: The document's schema version.
        extensions: The extension branches, each owned by one scope.
    """

    schema_version: int
    extensions: LiveExtensions


class LiveWriteResult(Base, frozen=True):
    """The safe metadata of one accepted live-data write; never contents or paths.

    Attributes:
        scope: The scope that wrote.
        base: Which base the write merged into.
        bytes: The size of the document written, in bytes.
        branches: The branches replaced or deleted, as dotted paths, sorted.
        lock_wait_ms: How long the write waited for the generated-data lock.
        lock_release: How the lock was released (see :data:`LockRelease`).
    """

    scope: str
    base: LiveBase
    bytes: int
    branches: list[str]
    lock_wait_ms: float = 0.0
    lock_release: LockRelease = "released"
