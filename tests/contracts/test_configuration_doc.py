"""``docs/configuration.md`` lists exactly the configuration's keys, defaults and ranges."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from contracts import Config, allowed_range, load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_SECTION = re.compile(r"^## `\[([a-z_.<>]+)\]`$")
_ROW = re.compile(r"^\| `([a-z_]+)` \| (.+?) \| (.+?) \| (.+) \|$")


def _toml(value: Any) -> str:
    if value is None:
        return "`(none)`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`"


def _unwrap(info: Any) -> Any:
    while isinstance(info, msgspec.inspect.UnionType):
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    return info


def _expected(cls: Any = Config, section: str = "", path: str = "$") -> dict[str, list[tuple]]:
    """Section name -> [(key, default, allowed)] from the configuration's types."""
    out: dict[str, list[tuple]] = {}
    rows: list[tuple] = []
    for field in msgspec.inspect.type_info(cls).fields:
        info = _unwrap(field.type)
        name = f"{section}.{field.name}" if section else field.name
        if isinstance(info, msgspec.inspect.StructType):
            out.update(_expected(info.cls, name, f"{path}.{field.name}"))
            continue
        if isinstance(info, msgspec.inspect.DictType) and isinstance(
            info.value_type, msgspec.inspect.StructType
        ):
            out.update(
                _expected(info.value_type.cls, f"{name}.<name>", f"{path}.{field.name}[...]")
            )
            continue
        if field.required:
            default = "(required)"
        elif field.default_factory is not msgspec.NODEFAULT:
            default = _toml(field.default_factory())
        else:
            default = _toml(field.default)
        allowed = allowed_range(f"{path}.{field.name}")
        if allowed is None and isinstance(info, msgspec.inspect.ListType):
            item = allowed_range(f"{path}.{field.name}[0]")
            item = "strings" if item in (None, "a string") else str(item)
            allowed = "a list of " + item.replace("an integer", "integers")
        if allowed is None and isinstance(info, msgspec.inspect.DictType):
            allowed = "a table of strings"
        rows.append((field.name, default, allowed))
    if section:
        out[section] = rows
    return out


def _documented() -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        match = _SECTION.match(line)
        if match:
            section = match.group(1)
            out[section] = []
            continue
        row = _ROW.match(line)
        if row and section is not None:
            key, default, allowed, meaning = row.groups()
            assert meaning.strip(), key
            out[section].append((key, default, allowed))
    return out


def test_the_reference_lists_every_key_with_its_default_and_range() -> None:
    expected = _expected()
    documented = _documented()
    assert sorted(documented) == sorted(expected)
    for section, rows in expected.items():
        assert documented[section] == rows, section


def test_the_complete_example_is_a_valid_configuration() -> None:
    text = DOC.read_text()
    example = text.split("## A complete example", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    config = load_config(example)
    assert config.live_data.scopes["my-ext"].owns == ["extensions.items.my-ext"]
    assert config.http.listen == "127.0.0.1:8787"
