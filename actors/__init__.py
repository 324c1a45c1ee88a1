"""actorbus actors: the session writers, the live-data gate and the enrichment cache."""

from ._enrich import Enrichment
from ._enrich_external import CommandProvider, HttpProvider, build_provider
from ._enrich_providers import (
    Provider,
    ProviderAnswer,
    ProviderItem,
    PythonProvider,
    SimulatedProvider,
)
from ._enrich_store import CacheEntry, CacheStore, FileCacheStore
from ._live_data import LIVE_DATA_LOCK, LiveData
from ._live_store import FileLiveStore, LiveStore
from ._named_lock import LockHandle, NamedLock, OwnerRecord
from ._privacy import PrivacyGate, PrivacyHit
from ._recorder import Recorder
from ._session_boundary import session_path, session_topic
from ._session_committer import SessionStore
from ._session_io import FileSessionStore
from ._session_writer import SessionWriter

__all__ = [
    "LIVE_DATA_LOCK",
    "CacheEntry",
    "CacheStore",
    "CommandProvider",
    "Enrichment",
    "FileCacheStore",
    "FileLiveStore",
    "FileSessionStore",
    "HttpProvider",
    "LiveData",
    "LiveStore",
    "LockHandle",
    "NamedLock",
    "OwnerRecord",
    "PrivacyGate",
    "PrivacyHit",
    "Provider",
    "ProviderAnswer",
    "ProviderItem",
    "PythonProvider",
    "Recorder",
    "SessionStore",
    "SessionWriter",
    "SimulatedProvider",
    "build_provider",
    "session_path",
    "session_topic",
]
