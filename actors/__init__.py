"""actorbus actors: the session writers, the live-data gate and the enrichment cache."""

from ._shared import JetStream, LockHandle, NamedLock, OwnerRecord, PrivacyGate, PrivacyHit
from .enrich import (
    CacheEntry,
    CacheStore,
    CommandProvider,
    Enrichment,
    FileCacheStore,
    HttpProvider,
    Provider,
    ProviderAnswer,
    ProviderItem,
    PythonProvider,
    SimulatedProvider,
    build_provider,
)
from .live import LIVE_DATA_LOCK, FileLiveStore, LiveData, LiveStore
from .session import (
    FileSessionStore,
    JetStreamSessions,
    Recorder,
    SessionStore,
    SessionWriter,
    session_path,
    session_topic,
)

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
    "JetStream",
    "JetStreamSessions",
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
