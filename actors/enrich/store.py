"""Enrichment cache storage: a narrow, IO-only interface and its file backend.

Every method is blocking and is called from a worker thread, one call per batch
of entries. Layout of :class:`FileCacheStore`::

    <root>/cache/enrichment/<sha256(enrichment_type)[:32]>/<slot[:2]>.json
    <root>/cache/enrichment/<sha256(enrichment_type)[:32]>/.lock

Each enrichment type is a partition of 256 shard files named by the first
two hex digits of the entry's slot (a sha256, see ``_enrich_keys``), so no id
ever becomes a path segment. A shard is one small JSON document holding the
entries whose slots share its prefix. Nothing is loaded at start-up and there is
no index to hold: a run reads the shards its items map to and lets them go, so
memory follows what the run touches. Writers (this process's actor, and other
processes on the same root) take the partition's ``flock`` around
read-modify-write; readers need no lock because shards are replaced atomically
(temp file, then ``rename``). A shard that cannot be decoded is salvaged entry by
entry; what cannot be read is counted ``malformed`` and never raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from .._shared.files import open_regular

__all__ = [
    "CacheEntry",
    "CacheStore",
    "CachedSummary",
    "FileCacheStore",
    "LoadResult",
    "PruneResult",
    "SaveResult",
]

#: Hex digits of the slot that name its shard: 256 shards per enrichment type. Fewer,
#: fuller shards cost fewer opens per run: a 100,000-entry cache reads in half the
#: time it took over 4,096 shards, and a one-item run still reads one shard of ~400 entries.
SHARD_DIGITS = 2
T = TypeVar("T")


class CacheEntry(msgspec.Struct, frozen=True, gc=False):
    """One cached summary: the key fields, the fingerprint, and when it was written.

    Never a provider's raw payload: only the bounded safe summary is kept. Holds
    only strings, so it is untracked by the garbage collector (cheap in bulk).
    """

    source_id: str
    item_id: str
    adapter_version: str
    fingerprint: str
    summary: str
    written_at: str


class CachedSummary(msgspec.Struct, frozen=True, gc=False):
    """The part of an entry a lookup needs (the same JSON, other fields skipped).

    Decoding only these fields is what makes a lookup cheap: msgspec skips the
    rest without building strings. The slot already names (type, source, item):
    a sha256 collision between two items is not a case worth a comparison.
    """

    adapter_version: str
    fingerprint: str
    summary: str


class _Shard(msgspec.Struct):
    v: int
    entries: dict[str, CacheEntry]


class _LeanShard(msgspec.Struct):
    v: int
    entries: dict[str, CachedSummary]


class _LooseShard(msgspec.Struct):
    v: int
    entries: dict[str, msgspec.Raw]


class SaveResult(msgspec.Struct):
    """How many entries were written, and whether any write failed."""

    written: int = 0
    degraded: bool = False


class PruneResult(msgspec.Struct):
    """Entries removed, entries kept, unreadable entries met, and store failure."""

    pruned: int = 0
    retained: int = 0
    malformed: int = 0
    degraded: bool = False


class LoadResult(msgspec.Struct):
    """What a lookup found.

    Attributes:
        entries: By slot: every asked-for slot that holds an entry (maybe more).
        malformed: Unreadable entries met.
        degraded: Whether the storage itself failed (every failed read is a miss).
    """

    entries: dict[str, CachedSummary]
    malformed: int = 0
    degraded: bool = False


class CacheStore(Protocol):
    """What the enrichment actor needs from storage (blocking; run in a worker thread)."""

    def ensure(self) -> bool:
        """Make the store usable (create what is missing); ``False`` if it cannot be."""
        ...

    def load(self, enrichment_type: str, slots: Iterable[str]) -> LoadResult:
        """Read the entries of ``slots`` (absent ones are simply missing)."""
        ...

    def save(self, enrichment_type: str, entries: Mapping[str, CacheEntry]) -> SaveResult:
        """Write entries by slot, replacing what those slots held."""
        ...

    def prune(self, enrichment_type: str, sources: Set[str], keep: Set[str]) -> PruneResult:
        """Remove entries of ``sources`` whose slot is not in ``keep``."""
        ...


_encode = msgspec.json.Encoder().encode
_FULL = (msgspec.json.Decoder(_Shard).decode, msgspec.json.Decoder(CacheEntry).decode)
_LEAN = (msgspec.json.Decoder(_LeanShard).decode, msgspec.json.Decoder(CachedSummary).decode)
_decode_loose = msgspec.json.Decoder(_LooseShard).decode
_BAD = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def _read(path: str) -> bytes:
    """A shard's bytes; raises ``FileNotFoundError`` when absent, ``OSError`` on IO."""
    # Not blocking, and a regular file only: a FIFO planted as a shard is an OSError
    # here (the shard is unreadable: its items are misses), never a hang.
    fd = open_regular(path, os.O_RDONLY)
    try:
        data = b""
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    finally:
        os.close(fd)
    return data


def _salvage(data: bytes, decode_entry: Callable[[bytes], T]) -> tuple[dict[str, T], int]:
    """Decode a shard entry by entry: keep what reads, count what does not."""
    try:
        loose = _decode_loose(data).entries
    except _BAD:
        return {}, 1
    good: dict[str, T] = {}
    bad = 0
    for slot, raw in loose.items():
        try:
            good[slot] = decode_entry(raw)
        except _BAD:
            bad += 1
    return good, bad


def _read_lean(path: str) -> tuple[dict[str, CachedSummary], int]:
    data = _read(path)
    try:
        return _LEAN[0](data).entries, 0
    except _BAD:
        return _salvage(data, _LEAN[1])


def _read_full(path: str) -> tuple[dict[str, CacheEntry], int]:
    data = _read(path)
    try:
        return _FULL[0](data).entries, 0
    except _BAD:
        return _salvage(data, _FULL[1])


class FileCacheStore:
    """Sharded JSON files under ``<root>/cache/enrichment`` (see the module docstring).

    Args:
        root: The service root; the cache lives under ``<root>/cache/enrichment``.
        shard_digits: Hex digits of the slot naming a shard (16**digits shards);
            every process sharing a root must use the same value.
    """

    def __init__(self, root: Path, *, shard_digits: int = SHARD_DIGITS) -> None:
        self.directory = root / "cache" / "enrichment"
        self.shard_digits = shard_digits

    def _partition(self, enrichment_type: str) -> Path:
        digest = hashlib.sha256(enrichment_type.encode("utf-8", "surrogatepass")).hexdigest()
        return self.directory / digest[:32]

    def ensure(self) -> bool:
        """Create the cache directory if missing (mode 0700); ``False`` if unusable."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.access(self.directory, os.R_OK | os.W_OK | os.X_OK)
        except OSError:
            return False

    def load(self, enrichment_type: str, slots: Iterable[str]) -> LoadResult:
        """Read each shard ``slots`` map to once; return their entries merged.

        Every entry of a touched shard is kept for the run's lookups: one C-level
        merge per shard is cheaper than picking entries out one by one.
        """
        result = LoadResult({})
        base = os.fspath(self._partition(enrichment_type))
        found = result.entries
        digits = self.shard_digits
        for shard in {slot[:digits] for slot in slots}:
            try:
                entries, bad = _read_lean(f"{base}/{shard}.json")
            except FileNotFoundError:
                continue
            except OSError:
                result.degraded = True
                continue
            result.malformed += bad
            found.update(entries)
        return result

    @contextlib.contextmanager
    def _locked(self, partition: Path) -> Iterator[None]:
        fd = open_regular(partition / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self, enrichment_type: str, entries: Mapping[str, CacheEntry]) -> SaveResult:
        """Merge entries into their shards under the partition lock, atomically each."""
        result = SaveResult()
        if not entries:
            return result
        partition = self._partition(enrichment_type)
        try:
            partition.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._locked(partition):
                by_shard: dict[str, dict[str, CacheEntry]] = {}
                for slot, entry in entries.items():
                    by_shard.setdefault(slot[: self.shard_digits], {})[slot] = entry
                for shard, updates in by_shard.items():
                    path = partition / f"{shard}.json"
                    try:
                        current, _ = _read_full(os.fspath(path))
                    except FileNotFoundError:
                        current = {}
                    except OSError:
                        # Unreadable for an IO reason: replacing it loses nothing we could read.
                        current = {}
                    current.update(updates)
                    try:
                        _replace(path, _encode(_Shard(1, current)))
                    except OSError:
                        result.degraded = True
                        continue
                    result.written += len(updates)
        except OSError:
            result.degraded = True
        return result

    def prune(self, enrichment_type: str, sources: Set[str], keep: Set[str]) -> PruneResult:
        """Drop entries of ``sources`` not in ``keep``; shards nobody can read go too."""
        result = PruneResult()
        partition = self._partition(enrichment_type)
        if not sources:
            return result
        try:
            with self._locked(partition):
                names = [e.name for e in os.scandir(partition) if e.name.endswith(".json")]
                for name in names:
                    self._prune_shard(partition / name, sources, keep, result)
        except FileNotFoundError:
            pass  # nothing was ever cached for this type
        except OSError:
            result.degraded = True
        return result

    @staticmethod
    def _prune_shard(path: Path, sources: Set[str], keep: Set[str], result: PruneResult) -> None:
        try:
            entries, bad = _read_full(os.fspath(path))
        except FileNotFoundError:
            return
        except OSError:
            result.degraded = True
            return
        result.malformed += bad
        kept = {}
        for slot, entry in entries.items():
            if entry.source_id in sources:
                if slot not in keep:
                    result.pruned += 1
                    continue
                result.retained += 1
            kept[slot] = entry
        if len(kept) == len(entries) and not bad:
            return
        try:
            if kept:
                _replace(path, _encode(_Shard(1, kept)))
            else:
                path.unlink()
        except OSError:
            result.degraded = True


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``.

    Readers see the old shard or the new one, never a mix. No fsync: a shard lost
    to a crash is a cache miss, never wrong data (an unreadable one is malformed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
