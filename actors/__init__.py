"""actorbus actors: the session writers, the live-data gate and the enrichment cache."""

from ._live_data import LIVE_DATA_LOCK, LiveData
from ._live_store import FileLiveStore, LiveStore
from ._named_lock import LockHandle, NamedLock, OwnerRecord
from ._privacy import PrivacyGate, PrivacyHit

__all__ = [
    "LIVE_DATA_LOCK",
    "FileLiveStore",
    "LiveData",
    "LiveStore",
    "LockHandle",
    "NamedLock",
    "OwnerRecord",
    "PrivacyGate",
    "PrivacyHit",
]
