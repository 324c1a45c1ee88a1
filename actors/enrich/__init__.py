"""Enrichment: answers from the private cache first, pays only for what changed.

See ``docs/enrichment.md``.
"""

from .external import CommandProvider, HttpProvider, build_provider
from .facade import Enrichment
from .providers import Provider, ProviderAnswer, ProviderItem, PythonProvider, SimulatedProvider
from .store import CacheEntry, CacheStore, FileCacheStore

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
