from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.enrich.keys import (
    fingerprint,
    is_secret_key,
    item_keys,
    key_items,
    sanitise,
    slot_of,
)
from contracts import EnrichItem, InvalidRequest

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
metadata = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


@given(metadata)
def test_key_order_never_changes_the_fingerprint(meta: dict[str, Any]) -> None:
    assert fingerprint(sanitise(meta)[1]) == fingerprint(sanitise(reordered(meta))[1])


@given(metadata)
def test_item_keys_agrees_with_its_parts(meta: dict[str, Any]) -> None:
    clean, canonical = sanitise(meta)
    assert item_keys("t", "s", "i", meta) == (clean, slot_of("t", "s", "i"), fingerprint(canonical))


def test_changed_values_change_the_fingerprint() -> None:
    assert fingerprint(sanitise({"a": 1})[1]) != fingerprint(sanitise({"a": 2})[1])
    assert fingerprint(sanitise({"a": 1})[1]) != fingerprint(sanitise({"a": "1"})[1])


def test_secret_named_keys_are_dropped_at_any_depth() -> None:
    meta = {
        "title": "x",
        "Api-Key": "k",
        "nested": {"access_token": "t", "keep": [{"password": "p", "ok": 1}]},
        "tokens_per_minute": 5,
        "cache_key": "c",
    }
    clean, canonical = sanitise(meta)
    assert clean == {
        "title": "x",
        "nested": {"keep": [{"ok": 1}]},
        "tokens_per_minute": 5,
        "cache_key": "c",
    }
    assert b"Api-Key" not in canonical and b"password" not in canonical
    # A rotated secret does not make the item look changed.
    rotated = {**meta, "Api-Key": "other"}
    assert fingerprint(sanitise(rotated)[1]) == fingerprint(canonical)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("CLIENT-SECRET", True),
        ("github_token", True),
        ("openai_api_key", True),
        ("system_prompt", True),
        ("stderr", True),
        ("token_count", False),
        ("cache_key", False),
        ("author", False),
        ("source", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_slots_separate_type_source_and_item() -> None:
    slots = {
        slot_of("t", "s", "i"),
        slot_of("t2", "s", "i"),
        slot_of("t", "s2", "i"),
        slot_of("t", "s", "i2"),
        slot_of("t", "s\x00i", ""),
    }
    assert len(slots) == 5
    assert all(len(s) == 64 and set(s) <= set("0123456789abcdef") for s in slots)


def test_metadata_that_is_not_json_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        sanitise({"x": object()})
    deep: dict[str, Any] = {}
    for _ in range(10_000):
        deep = {"d": deep}
    with pytest.raises(InvalidRequest):
        item_keys("t", "s", "i", deep)


@given(st.lists(metadata, max_size=5))
def test_key_items_agrees_with_item_keys(metas: list[dict[str, Any]]) -> None:
    items = [EnrichItem("s", f"i{n}", m, force=n == 0) for n, m in enumerate(metas)]
    items.append(EnrichItem("s", None, {}))
    keyed = key_items("t", items)
    assert keyed.ineligible == [len(metas)]
    assert keyed.forced == ({0} if metas else set())
    expected = [item_keys("t", "s", f"i{n}", m) for n, m in enumerate(metas)]
    assert list(zip(keyed.metadata, keyed.slots, keyed.fingerprints, strict=True)) == expected


def test_key_items_names_the_bad_item() -> None:
    with pytest.raises(InvalidRequest, match=r"items\[1\]"):
        key_items("t", [EnrichItem("s", "a", {}), EnrichItem("s", "b", {"x": object()})])
