"""The document contract: valid documents pass, invalid ones fail, nothing is repaired."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.live.validate import ContractValidator, canonical, pretty
from contracts import LiveDataInvalid

ITEM = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}
DOC: dict[str, Any] = {
    "schema_version": 1,
    "hosts": {"web-1": {"load": 0.5, "tags": ["a", "b"]}},
    "extensions": {"items": {"trend-finder": {**ITEM, "topics": ["x"], "score": 1.5}}},
}


class WithDefault(msgspec.Struct):
    schema_version: int
    mode: str = "auto"


class WithFloat(msgspec.Struct):
    schema_version: int
    ratio: float


class Closed(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: int


def test_a_valid_document_passes_and_yields_its_canonical_bytes() -> None:
    assert ContractValidator().validate(DOC) == canonical(DOC)


def test_extension_items_may_carry_more_than_status_and_updated_at() -> None:
    doc = {**DOC, "extensions": {"items": {"x": {**ITEM, "extra": {"deep": [1, 2]}}}}}
    ContractValidator().validate(doc)


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"extensions": {"items": {}}}, "schema_version"),
        ({"schema_version": 1}, "extensions"),
        ({"schema_version": "1", "extensions": {"items": {}}}, "$.schema_version"),
        ({"schema_version": 1.0, "extensions": {"items": {}}}, "$.schema_version"),
        ({"schema_version": True, "extensions": {"items": {}}}, "$.schema_version"),
        ({"schema_version": 1, "extensions": {}}, "items"),
        ({"schema_version": 1, "extensions": {"items": []}}, "$.extensions.items"),
        ({"schema_version": 1, "extensions": {"items": {"a": {"status": "ok"}}}}, "updated_at"),
        ({"schema_version": 1, "extensions": {"items": {"a": {**ITEM, "updated_at": ""}}}}, "at"),
        ({"schema_version": 1, "extensions": {"items": {}}, "host": [1]}, "host"),
        ({"schema_version": 1, "extensions": {"items": {}}, "host": "up"}, "host"),
    ],
)
def test_an_invalid_document_fails_naming_where(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(LiveDataInvalid) as info:
        ContractValidator().validate(doc)
    assert where in info.value.message


def test_a_document_that_is_not_an_object_fails() -> None:
    with pytest.raises(LiveDataInvalid, match="JSON object"):
        ContractValidator().validate([1])  # type: ignore[arg-type]


def test_a_bad_status_is_rejected_without_echoing_the_value() -> None:
    doc = {"schema_version": 1, "extensions": {"items": {"a": {**ITEM, "status": "zz-42-zz"}}}}
    with pytest.raises(LiveDataInvalid) as info:
        ContractValidator().validate(doc)
    assert "zz-42-zz" not in info.value.message
    assert "allowed values" in info.value.message


def test_a_filled_in_default_is_a_failure_not_a_fix() -> None:
    with pytest.raises(LiveDataInvalid, match=r"mode \(a default would be filled in\)"):
        ContractValidator(WithDefault).validate({"schema_version": 1})
    ContractValidator(WithDefault).validate({"schema_version": 1, "mode": "manual"})


def test_a_coerced_value_is_a_failure_not_a_fix() -> None:
    with pytest.raises(LiveDataInvalid, match=r"ratio \(the value would be coerced\)"):
        ContractValidator(WithFloat).validate({"schema_version": 1, "ratio": 1})
    ContractValidator(WithFloat).validate({"schema_version": 1, "ratio": 1.0})


def test_a_closed_contract_rejects_unknown_root_keys_without_naming_them() -> None:
    with pytest.raises(LiveDataInvalid) as info:
        ContractValidator(Closed).validate({"schema_version": 1, "Zq9-private": {}})
    assert "unknown field" in info.value.message
    assert "Zq9-private" not in info.value.message


def test_a_non_struct_contract_is_checked_by_round_trip() -> None:
    validator = ContractValidator(dict[str, int])
    validator.validate({"a": 1})
    with pytest.raises(LiveDataInvalid):
        validator.validate({"a": "1"})


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_stored_bytes_that_are_not_a_json_object_fail(raw: bytes) -> None:
    with pytest.raises(LiveDataInvalid):
        ContractValidator().decode_bytes(raw)


def test_stored_bytes_of_a_valid_document_decode() -> None:
    assert ContractValidator().decode_bytes(pretty(DOC)) == DOC


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    deep: Any = {}
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(LiveDataInvalid):
        ContractValidator().validate({"schema_version": 1, "extensions": {"items": {}}, "h": deep})


def test_the_written_layout_is_fixed() -> None:
    assert pretty({"b": 1, "a": [1, {"d": 2, "c": None}]}) == (
        b'{\n  "a": [\n    1,\n    {\n      "c": null,\n      "d": 2\n    }\n  ],\n  "b": 1\n}\n'
    )


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=6),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=12,
        ),
        max_size=5,
    )
)
def test_the_same_document_gives_the_same_bytes_whatever_the_key_order(doc: dict[str, Any]) -> None:
    shuffled = dict(reversed(list(doc.items())))
    assert pretty(doc) == pretty(shuffled)
    assert msgspec.json.decode(pretty(doc)) == doc
