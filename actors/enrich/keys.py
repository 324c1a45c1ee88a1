"""Cache keys for enrichment: sanitised metadata, its fingerprint, and the item's slot.

The cache key (``docs/enrichment.md``) is ``(source_id, item_id, adapter_version,
enrichment_type, fingerprint)``. It is stored in two parts: the *slot*, a sha256
of ``(enrichment_type, source_id, item_id)`` that names where the item's entry
lives, and the entry's own ``adapter_version`` and ``fingerprint``, which must
both match for a hit. An item so has at most one entry: a changed item replaces
its entry instead of leaving the old one behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from contracts import EnrichItem, InvalidRequest

from .._shared.privacy import is_secret_key

__all__ = [
    "KeyedItems",
    "fingerprint",
    "is_secret_key",
    "item_keys",
    "key_items",
    "sanitise",
    "slot_of",
]

# Keys already found not to name a secret: metadata repeats the same few keys, so
# most items need no walk at all. Bounded; shared by worker threads, which is safe
# because membership tests and adds are atomic and a key's verdict never changes.
_SAFE_KEYS: set[str] = set()
_MAX_SAFE_KEYS = 4096
_SCALARS = frozenset({str, int, float, bool, type(None)})

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_FP_DOMAIN = b"actorbus.enrich.fingerprint.v1\x00"
_SLOT_DOMAIN = b"actorbus.enrich.slot.v1\x00"


def _has_secret(value: Any) -> bool:
    if type(value) is dict:
        safe = _SAFE_KEYS
        for key, inner in value.items():
            if key not in safe:
                if is_secret_key(str(key)):
                    return True
                if type(key) is str and len(safe) < _MAX_SAFE_KEYS:
                    safe.add(key)
            kind = type(inner)
            if (kind is dict or kind is list or kind is tuple) and _has_secret(inner):
                return True
    elif type(value) is list or type(value) is tuple:
        for inner in value:
            kind = type(inner)
            if (kind is dict or kind is list or kind is tuple) and _has_secret(inner):
                return True
    return False


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list | tuple):
        return [_strip(v) for v in value]
    return value


def _canonical(metadata: dict[str, Any]) -> bytes:
    try:
        return _encode_sorted(metadata)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"metadata is not JSON: {type(exc).__name__}") from None
    except RecursionError:
        raise InvalidRequest("metadata nests too deep") from None


def sanitise(metadata: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Drop secret-named keys at any depth; return the metadata and its canonical bytes.

    The canonical bytes are JSON with every object's keys sorted, so two mappings
    that differ only in key order encode the same.

    Raises:
        InvalidRequest: The metadata cannot be encoded as JSON.
    """
    raw = _canonical(metadata)
    # Fast path (C-level checks): every key known safe and no value nested.
    if _SAFE_KEYS.issuperset(metadata) and _SCALARS.issuperset(map(type, metadata.values())):
        return metadata, raw
    if not _has_secret(metadata):
        return metadata, raw
    clean = _strip(metadata)
    return clean, _canonical(clean)


def fingerprint(canonical: bytes) -> str:
    """The sha256 (hex) of sanitised metadata's canonical bytes."""
    return hashlib.sha256(_FP_DOMAIN + canonical).hexdigest()


def slot_of(enrichment_type: str, source_id: str, item_id: str) -> str:
    """The sha256 (hex) naming an item's entry; never a raw id in a path."""
    return hashlib.sha256(
        _SLOT_DOMAIN + _encode_sorted((enrichment_type, source_id, item_id))
    ).hexdigest()


_sha256 = hashlib.sha256


def item_keys(
    enrichment_type: str, source_id: str, item_id: str, metadata: dict[str, Any]
) -> tuple[dict[str, Any], str, str]:
    """One item's sanitised metadata, slot and fingerprint, in one call.

    The same as :func:`sanitise`, :func:`slot_of` and :func:`fingerprint` together,
    inlined because every item of every run goes through here.

    Raises:
        InvalidRequest: The metadata cannot be encoded as JSON.
    """
    raw = _canonical(metadata)
    if not (
        _SAFE_KEYS.issuperset(metadata) and _SCALARS.issuperset(map(type, metadata.values()))
    ) and _has_secret(metadata):
        metadata = _strip(metadata)
        raw = _canonical(metadata)
    slot = _sha256(_SLOT_DOMAIN + _encode_sorted((enrichment_type, source_id, item_id)))
    return metadata, slot.hexdigest(), _sha256(_FP_DOMAIN + raw).hexdigest()


class KeyedItems:
    """A request's eligible items keyed, as parallel lists (the form lookups iterate fastest).

    Position ``p`` describes request item ``indices[p]``: its slot, fingerprint
    and sanitised metadata. ``ineligible`` lists the items without a stable id,
    ``forced`` those with ``force`` set (request indices).
    """

    __slots__ = ("fingerprints", "forced", "indices", "ineligible", "metadata", "slots")

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.slots: list[str] = []
        self.fingerprints: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.ineligible: list[int] = []
        self.forced: set[int] = set()


def key_items(enrichment_type: str, items: Sequence[EnrichItem]) -> KeyedItems:
    """Key every item of a request: :func:`item_keys` over the whole list, inlined.

    Every item of every run passes through this loop, so it keeps everything in
    locals and calls nothing per item that it can do in place.

    Raises:
        InvalidRequest: An item is not an :class:`EnrichItem`, or its metadata is
            not a JSON object.
    """
    out = KeyedItems()
    indices, slots, fps, metas = out.indices, out.slots, out.fingerprints, out.metadata
    ineligible, forced = out.ineligible, out.forced
    enc, sha, safe, scalars = _encode_sorted, _sha256, _SAFE_KEYS, _SCALARS
    index = -1
    try:
        for item in items:
            index += 1
            if type(item) is not EnrichItem:
                raise InvalidRequest(f"items[{index}] is not an enrich item")
            item_id = item.item_id
            if not item_id:
                ineligible.append(index)
                continue
            metadata = item.metadata
            if type(metadata) is not dict:
                raise InvalidRequest(f"items[{index}].metadata must be an object")
            raw = enc(metadata)
            if not (
                safe.issuperset(metadata) and scalars.issuperset(map(type, metadata.values()))
            ) and _has_secret(metadata):
                metadata = _strip(metadata)
                raw = enc(metadata)
            indices.append(index)
            slots.append(
                sha(_SLOT_DOMAIN + enc((enrichment_type, item.source_id, item_id))).hexdigest()
            )
            fps.append(sha(_FP_DOMAIN + raw).hexdigest())
            metas.append(metadata)
            if item.force:
                forced.add(index)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(
            f"items[{index}]: metadata is not JSON: {type(exc).__name__}"
        ) from None
    except RecursionError:
        raise InvalidRequest(f"items[{index}]: metadata nests too deep") from None
    return out
