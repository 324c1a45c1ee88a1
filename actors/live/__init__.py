"""Live data: the single gate that merges scoped writes into the browser-visible document.

See ``docs/runbook.md`` (ownership, locks, fallback, privacy) and ``docs/protocol.md``.
"""

from .facade import LIVE_DATA_LOCK, LiveData
from .store import FileLiveStore, LiveStore

__all__ = ["LIVE_DATA_LOCK", "FileLiveStore", "LiveData", "LiveStore"]
