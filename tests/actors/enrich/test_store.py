from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from actors import CacheEntry, FileCacheStore
from actors.enrich.keys import slot_of
from actors.enrich.store import SHARD_DIGITS

STAMP = "2026-01-01T00:00:00.000Z"


def entry(item: str, source: str = "s", version: str = "v1") -> CacheEntry:
    return CacheEntry(
        source, item, version, "f" * 64, f"summary {item}", "2026-01-01T00:00:00.000Z"
    )


def slots_for(items: list[str], source: str = "s") -> dict[str, CacheEntry]:
    return {slot_of("t", source, i): entry(i, source) for i in items}


def read_all(store: FileCacheStore, slots: list[str]) -> dict[str, str]:
    entries = store.load("t", slots).entries
    return {s: entries[s].summary for s in slots if s in entries}


def test_saved_entries_read_back_and_absent_ones_are_missing(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    assert store.ensure()
    entries = slots_for([f"i{n}" for n in range(50)])
    assert store.save("t", entries).written == 50
    assert read_all(store, list(entries)) == {s: e.summary for s, e in entries.items()}
    assert slot_of("t", "s", "never") not in store.load("t", [slot_of("t", "s", "never")]).entries
    assert store.load("other-type", list(entries)).entries == {}


def test_files_are_named_by_hashes_and_written_atomically(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save("type/../../x", slots_for(["../../etc/passwd", "a b", "ü"]))
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert files
    for path in files:
        rel = path.relative_to(tmp_path / "cache" / "enrichment")
        assert len(rel.parts) == 2 and len(rel.parts[0]) == 32
        assert rel.parts[1] == ".lock" or len(rel.parts[1]) == SHARD_DIGITS + len(".json")
        assert not path.name.endswith(".tmp")
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in files)


def test_a_corrupt_shard_counts_malformed_and_salvages_what_reads(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    entries = slots_for([f"i{n}" for n in range(3000)])
    store.save("t", entries)
    shards = sorted((tmp_path / "cache" / "enrichment").rglob("*.json"))
    shards[0].write_bytes(b"\xff\xfe garbage")
    text = shards[1].read_text()
    first_slot = text.split('"', 6)[5]
    shards[1].write_text(text.replace(f'"{first_slot}":{{', f'"{first_slot}":{{"summary":1,', 1))
    loaded = store.load("t", entries)
    assert loaded.malformed == 2
    assert not loaded.degraded
    assert 0 < len(entries) - sum(s in loaded.entries for s in entries) < 3000
    # Saving over a corrupt shard replaces it instead of failing.
    assert store.save("t", entries).written == 3000
    again = store.load("t", entries)
    assert all(s in again.entries for s in entries) and again.malformed == 0


def test_an_unusable_directory_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a directory")
    store = FileCacheStore(tmp_path)
    assert not store.ensure()
    assert store.save("t", slots_for(["a"])).degraded
    assert store.prune("t", {"s"}, set()).degraded
    loaded = store.load("t", [slot_of("t", "s", "a")])
    assert loaded.entries == {} and loaded.degraded


def test_prune_drops_only_unkept_entries_of_the_named_sources(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    mine = slots_for([f"i{n}" for n in range(100)])
    theirs = slots_for([f"i{n}" for n in range(10)], source="other")
    store.save("t", {**mine, **theirs})
    keep = set(list(mine)[:40])
    result = store.prune("t", {"s"}, keep)
    assert (result.pruned, result.retained, result.malformed) == (60, 40, 0)
    assert set(read_all(store, list(mine) + list(theirs))) == keep | set(theirs)
    assert store.prune("t", set(), set()).pruned == 0
    assert store.prune("never-cached", {"s"}, set()).pruned == 0


def test_prune_removes_shards_nobody_can_read(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save("t", slots_for(["a"]))
    shard = next((tmp_path / "cache" / "enrichment").rglob("*.json"))
    shard.write_bytes(b"junk")
    result = store.prune("t", {"s"}, set())
    assert result.malformed == 1 and not shard.exists()


WRITER = """
import sys
from pathlib import Path
from actors import CacheEntry, FileCacheStore
from actors.enrich.keys import slot_of
from actors.enrich.store import SHARD_DIGITS
root, name = Path(sys.argv[1]), sys.argv[2]
store = FileCacheStore(root, shard_digits=1)
for batch in range(20):
    entries = {}
    for n in range(10):
        item = f"{name}-{batch}-{n}"
        entries[slot_of("t", "s", item)] = CacheEntry("s", item, "v1", "f", item, "now")
    assert store.save("t", entries).written == 10
"""


def test_writers_in_two_processes_lose_no_entry(tmp_path: Path) -> None:
    # 16 shards: nearly every save of one process rewrites shards the other writes.
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name]) for name in ("a", "b")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    store = FileCacheStore(tmp_path, shard_digits=1)
    slots = [
        slot_of("t", "s", f"{name}-{b}-{n}") for name in "ab" for b in range(20) for n in range(10)
    ]
    assert len(read_all(store, slots)) == 400


def test_a_fifo_planted_as_a_shard_or_the_partition_lock_is_refused_without_hanging(
    tmp_path: Path,
) -> None:
    store = FileCacheStore(tmp_path)
    entries = slots_for(["a"])
    store.save("t", entries)
    (shard,) = (tmp_path / "cache" / "enrichment").rglob("*.json")
    shard.unlink()
    os.mkfifo(shard)
    loaded = store.load("t", list(entries))  # a plain open would wait for a writer here
    assert loaded.entries == {} and loaded.degraded
    # Saving replaces an unreadable shard by rename (nothing readable is lost).
    assert store.save("t", entries).written == 1
    assert read_all(store, list(entries)) == {s: e.summary for s, e in entries.items()}
    lock = shard.parent / ".lock"
    lock.unlink()
    os.mkfifo(lock)
    assert store.save("t", entries).degraded
    assert os.path.exists(lock) and not lock.is_file()
