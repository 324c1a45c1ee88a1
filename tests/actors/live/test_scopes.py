"""Branch ownership and the scoped merge: the documented checks, in order, and merge laws."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.live.scopes import build_scopes, check_write, merge
from contracts import InvalidRequest, LiveDataInvalid, OwnershipViolation, ScopeConfig

ITEM = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}
BASE: dict[str, Any] = {
    "schema_version": 1,
    "hosts": {"web-1": {"load": 0.5}},
    "extensions": {
        "items": {
            "trend-finder": {**ITEM, "topics": ["a"]},
            "my-ext": {**ITEM, "status": "degraded"},
        }
    },
}


def scopes(**owns: list[str]) -> dict[str, Any]:
    return build_scopes({name: ScopeConfig(owns=paths) for name, paths in owns.items()})


# ---- the ownership map -------------------------------------------------------


def test_the_default_scopes_always_exist() -> None:
    found = build_scopes({})
    assert set(found) == {"full", "host-local", "trend-finder"}
    assert found["trend-finder"].paths == (("extensions", "items", "trend-finder"),)


def test_a_configured_scope_owns_its_paths() -> None:
    found = scopes(**{"my-ext": ["extensions.items.my-ext"]})
    assert found["my-ext"].paths == (("extensions", "items", "my-ext"),)


@pytest.mark.parametrize(
    ("owns", "overlapping"),
    [
        (["extensions.items.trend-finder"], "extensions.items.trend-finder"),
        (["extensions.items.trend-finder.sub"], "extensions.items.trend-finder"),
        (["extensions.items"], "extensions.items.trend-finder"),
        (["extensions"], "extensions.items.trend-finder"),
        (["schema_version"], "host-local"),
        (["hosts.web-1"], "host-local"),
    ],
)
def test_overlapping_ownership_is_a_start_up_error(owns: list[str], overlapping: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        scopes(**{"my-ext": owns})
    assert overlapping in info.value.message


def test_two_configured_scopes_may_not_overlap_each_other() -> None:
    with pytest.raises(InvalidRequest, match="owned by a-ext"):
        scopes(**{"a-ext": ["extensions.items.shared"], "b-ext": ["extensions.items.shared.x"]})


def test_disjoint_configured_scopes_are_accepted() -> None:
    found = scopes(**{"a-ext": ["extensions.items.a"], "b-ext": ["extensions.items.b"]})
    assert {"a-ext", "b-ext"} <= set(found)


@pytest.mark.parametrize("name", ["full", "host-local", "trend-finder"])
def test_a_built_in_scope_cannot_be_redefined(name: str) -> None:
    with pytest.raises(InvalidRequest, match="built in"):
        scopes(**{name: ["extensions.items.other"]})


@pytest.mark.parametrize("owns", [[], ["extensions..x"], ["extensions.items.a b"], [""]])
def test_a_scope_owning_nothing_or_a_malformed_path_is_refused(owns: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        scopes(**{"my-ext": owns})


# ---- the checks, in their documented order ------------------------------------------------


def test_an_unknown_scope_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="unknown live-data scope") as raised:
        check_write(build_scopes({}), "nope", {"hosts": {}}, False)
    # The configured names are listed; the one the client sent is not repeated.
    assert "nope" not in raised.value.message
    assert "full, host-local, trend-finder" in raised.value.message


def test_an_unknown_scope_is_reported_before_anything_else() -> None:
    with pytest.raises(InvalidRequest):
        check_write(build_scopes({}), "nope", "not an object", False)


def test_data_that_is_not_an_object_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        check_write(build_scopes({}), "trend-finder", ["x"], False)


def test_data_outside_the_scope_names_every_offending_path_by_known_keys_only() -> None:
    data = {
        "hosts": {"web-1": {}},
        "extensions": {"items": {"trend-finder": ITEM, "my-ext": ITEM}, "other": 1},
    }
    with pytest.raises(OwnershipViolation) as info:
        check_write(
            build_scopes({"my-ext": ScopeConfig(["extensions.items.my-ext"])}),
            "trend-finder",
            data,
            False,
        )
    offending, owns = info.value.message.split(": ", 1)[1].split(" (it owns ")
    # A configured scope's path is the document's own; a key the client made up is not.
    assert offending == "[...], extensions.items.my-ext, extensions[...]"
    assert owns == "extensions.items.trend-finder)"


def test_a_container_of_owned_branches_must_be_an_object() -> None:
    with pytest.raises(OwnershipViolation, match=r"extensions\.items"):
        check_write(build_scopes({}), "trend-finder", {"extensions": {"items": 5}}, False)


def test_ownership_is_checked_before_an_omitted_branch() -> None:
    with pytest.raises(OwnershipViolation):
        check_write(build_scopes({}), "trend-finder", {"hosts": {}}, False)


def test_host_local_does_not_own_extensions() -> None:
    with pytest.raises(OwnershipViolation, match="extensions"):
        check_write(build_scopes({}), "host-local", {"schema_version": 1, "extensions": {}}, False)


@pytest.mark.parametrize(
    ("scope", "data"),
    [
        ("trend-finder", {}),
        ("trend-finder", {"extensions": {}}),
        ("trend-finder", {"extensions": {"items": {}}}),
        ("host-local", {}),
        ("full", {}),
    ],
)
def test_omitting_the_own_branch_without_delete_is_invalid(scope: str, data: Any) -> None:
    with pytest.raises(LiveDataInvalid, match=r"delete|empty"):
        check_write(build_scopes({}), scope, data, False)


def test_omitting_the_own_branch_with_delete_is_accepted() -> None:
    scope, branches = check_write(build_scopes({}), "trend-finder", {}, True)
    assert scope.name == "trend-finder"
    assert branches == ["extensions.items.trend-finder"]


def test_a_host_local_write_reports_the_root_keys_it_writes() -> None:
    _, branches = check_write(build_scopes({}), "host-local", {"schema_version": 2, "a": {}}, False)
    assert branches == ["a", "schema_version"]


def test_a_multi_path_scope_must_send_every_branch_it_owns() -> None:
    found = scopes(**{"pair": ["extensions.items.p1", "extensions.items.p2"]})
    with pytest.raises(LiveDataInvalid, match=r"extensions\.items\.p2"):
        check_write(found, "pair", {"extensions": {"items": {"p1": ITEM}}}, False)


# ---- the merge ---------------------------------------------------------------


def test_a_scoped_write_replaces_only_its_branch() -> None:
    found = build_scopes({})
    new_item = {**ITEM, "topics": ["b", "c"]}
    merged = merge(
        BASE, found["trend-finder"], {"extensions": {"items": {"trend-finder": new_item}}}
    )
    assert merged["extensions"]["items"]["trend-finder"] == new_item
    assert merged["extensions"]["items"]["my-ext"] == BASE["extensions"]["items"]["my-ext"]
    assert merged["hosts"] == BASE["hosts"]
    assert merged["schema_version"] == 1


def test_host_local_replaces_the_whole_set_of_root_keys_and_keeps_extensions() -> None:
    merged = merge(BASE, build_scopes({})["host-local"], {"schema_version": 2, "db": {"up": True}})
    assert merged == {"schema_version": 2, "db": {"up": True}, "extensions": BASE["extensions"]}


def test_delete_removes_the_owned_branch_and_nothing_else() -> None:
    merged = merge(BASE, build_scopes({})["trend-finder"], {})
    assert "trend-finder" not in merged["extensions"]["items"]
    assert "my-ext" in merged["extensions"]["items"]


def test_a_full_write_replaces_the_document_without_a_base() -> None:
    doc = {"schema_version": 3, "extensions": {"items": {}}}
    assert merge(None, build_scopes({})["full"], doc) == doc


def test_a_write_creates_missing_parents_of_its_branch() -> None:
    base = {"schema_version": 1}
    merged = merge(
        base, build_scopes({})["trend-finder"], {"extensions": {"items": {"trend-finder": ITEM}}}
    )
    assert merged == {"schema_version": 1, "extensions": {"items": {"trend-finder": ITEM}}}


def test_a_base_whose_parent_is_not_an_object_cannot_be_written_into() -> None:
    found = scopes(**{"deep": ["extensions.other.deep"]})
    base = {"schema_version": 1, "extensions": {"items": {}, "other": "text"}}
    with pytest.raises(LiveDataInvalid, match=r"extensions\.other is not an object"):
        merge(base, found["deep"], {"extensions": {"other": {"deep": 1}}})


def test_merge_modifies_neither_argument() -> None:
    base = copy.deepcopy(BASE)
    data = {"extensions": {"items": {"trend-finder": {**ITEM}}}}
    before = copy.deepcopy(data)
    merged = merge(base, build_scopes({})["trend-finder"], data)
    merged["extensions"]["items"]["trend-finder"]["status"] = "offline"
    assert base == BASE
    assert data == before


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = st.text("abcdefgh-_", min_size=1, max_size=6).filter(lambda k: k != "extensions")


@given(
    hosts=st.dictionaries(KEYS, JSON, max_size=4),
    items=st.dictionaries(KEYS, JSON, max_size=4),
    value=JSON,
)
def test_branches_a_scope_does_not_own_always_come_through_unchanged(
    hosts: dict[str, Any], items: dict[str, Any], value: Any
) -> None:
    base = {**hosts, "extensions": {"items": items}}
    frozen = copy.deepcopy(base)
    data = {"extensions": {"items": {"trend-finder": value}}}
    merged = merge(base, build_scopes({})["trend-finder"], data)
    assert merged["extensions"]["items"].pop("trend-finder") == value
    frozen["extensions"]["items"].pop("trend-finder", None)
    assert merged == frozen
    host_merged = merge(base, build_scopes({})["host-local"], hosts)
    assert host_merged["extensions"] == base["extensions"]
