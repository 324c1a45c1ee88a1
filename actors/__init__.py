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

__all__ = [
    "CacheEntry",
    "CacheStore",
    "CommandProvider",
    "Enrichment",
    "FileCacheStore",
    "HttpProvider",
    "Provider",
    "ProviderAnswer",
    "ProviderItem",
    "PythonProvider",
    "SimulatedProvider",
    "build_provider",
]
