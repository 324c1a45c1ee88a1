"""Branch ownership of the live-data document and the scoped merge (pure functions).

Each scope owns branches of the document, named by dotted paths:

- ``full`` (the compatibility writer) owns the whole document;
- ``host-local`` owns every root key except ``extensions``, replaced as one set;
- ``trend-finder`` owns ``extensions.items.trend-finder``;
- a configured scope owns the paths it lists (``[live_data.scopes.<name>] owns``).

Owned branches never overlap (``full`` aside, which owns everything by design);
:func:`build_scopes` refuses a map where they would. A write's ``data`` is always
shaped like the whole document; :func:`check_write` applies the checks of
``docs/runbook.md`` in order (unknown scope, data outside the scope, own branch omitted) and
:func:`merge` replaces only the scope's branches in a copy of the base.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contracts import (
    InvalidRequest,
    LiveDataInvalid,
    LiveDocument,
    OwnershipViolation,
    ScopeConfig,
    contract_names,
)

from .._shared.privacy import format_path, redact

__all__ = [
    "EXTENSIONS",
    "FULL",
    "HOST_LOCAL",
    "TREND_FINDER",
    "Scope",
    "build_scopes",
    "check_write",
    "merge",
    "safe_scope_name",
]

FULL = "full"
HOST_LOCAL = "host-local"
TREND_FINDER = "trend-finder"
#: The one root key ``host-local`` does not own.
EXTENSIONS = "extensions"

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")
_SCOPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Path = tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """One writer's ownership.

    Attributes:
        name: The scope name clients send.
        kind: ``full`` (whole document), ``host`` (every root key except
            ``extensions``) or ``paths`` (the listed branches).
        paths: The owned branches when ``kind`` is ``paths``.
    """

    name: str
    kind: Literal["full", "host", "paths"]
    paths: tuple[Path, ...] = ()

    def owns_root_key(self, key: str) -> bool:
        """Whether the whole root key ``key`` belongs to this scope."""
        if self.kind == "full":
            return True
        if self.kind == "host":
            return key != EXTENSIONS
        return (key,) in self.paths


def safe_scope_name(name: object) -> str:
    """The scope name as it may appear in a message: redacted, or a placeholder."""
    if isinstance(name, str) and _SCOPE_NAME.fullmatch(name):
        return redact(name)
    return "<unprintable scope name>"


def _parse_path(scope: str, text: str) -> Path:
    segments = tuple(text.split("."))
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidRequest(
            f"invalid live-data configuration: scope {safe_scope_name(scope)} owns a path "
            "that is not dot-separated segments of letters, digits, '_' and '-'"
        )
    return segments


def _overlap(a: Path, b: Path) -> bool:
    short = min(len(a), len(b))
    return a[:short] == b[:short]


def build_scopes(configured: Mapping[str, ScopeConfig]) -> dict[str, Scope]:
    """The ownership map: the defaults plus configured scopes, checked for overlap.

    Args:
        configured: ``[live_data.scopes]`` from the configuration.

    Returns:
        Every scope by name.

    Raises:
        InvalidRequest: A configured scope reuses a default name, has a bad name or
            path, owns nothing, or owns a branch another scope owns (start-up error).
    """
    scopes: dict[str, Scope] = {
        FULL: Scope(FULL, "full"),
        HOST_LOCAL: Scope(HOST_LOCAL, "host"),
        TREND_FINDER: Scope(TREND_FINDER, "paths", ((EXTENSIONS, "items", TREND_FINDER),)),
    }
    owners: list[tuple[Path, str]] = [((EXTENSIONS, "items", TREND_FINDER), TREND_FINDER)]
    for name, config in sorted(configured.items()):
        shown = safe_scope_name(name)
        if name in scopes:
            raise InvalidRequest(
                f"invalid live-data configuration: scope {shown} is built in and cannot be "
                "redefined"
            )
        if not _SCOPE_NAME.fullmatch(name):
            raise InvalidRequest(f"invalid live-data configuration: bad scope name {shown}")
        if not config.owns:
            raise InvalidRequest(f"invalid live-data configuration: scope {shown} owns nothing")
        paths = tuple(_parse_path(name, p) for p in config.owns)
        for path in paths:
            if path[0] != EXTENSIONS:
                raise InvalidRequest(
                    f"invalid live-data configuration: scope {shown} owns "
                    f"{format_path(path)}, which overlaps {HOST_LOCAL} (every root key "
                    f"except {EXTENSIONS})"
                )
            for other_path, other in owners:
                if _overlap(path, other_path):
                    raise InvalidRequest(
                        f"invalid live-data configuration: scope {shown} owns "
                        f"{format_path(path)}, which overlaps {format_path(other_path)} "
                        f"owned by {safe_scope_name(other)}"
                    )
            owners.append((path, name))
        scopes[name] = Scope(name, "paths", paths)
    return scopes


def _outside(data: dict[str, Any], paths: Sequence[Path]) -> list[Path]:
    """Paths in ``data`` that no owned path covers (containers leading to one are fine)."""
    offending: list[Path] = []

    def walk(node: dict[str, Any], prefix: Path, candidates: Sequence[Path]) -> None:
        for key, value in node.items():
            here = (*prefix, key)
            below = [p for p in candidates if p[: len(here)] == here]
            if not below:
                offending.append(here)
            elif any(len(p) == len(here) for p in below):
                continue  # the whole branch is owned
            elif isinstance(value, dict):
                walk(value, here, below)
            else:
                offending.append(here)  # a container of owned branches must be an object

    walk(data, (), paths)
    return offending


def _get(node: Any, path: Path) -> tuple[bool, Any]:
    for segment in path:
        if not isinstance(node, dict) or segment not in node:
            return False, None
        node = node[segment]
    return True, node


def _known_keys(scopes: Mapping[str, Scope]) -> frozenset[str]:
    """The document's own key names: its contract's fields and every configured path's."""
    names = set(contract_names(LiveDocument))
    for scope in scopes.values():
        for path in scope.paths:
            names.update(str(segment) for segment in path)
    return frozenset(names)


def _known_path(path: Path, known: frozenset[str]) -> str:
    """``path`` with each key that is not one of the document's own shown as ``[...]``.

    A key the client made up is whatever it sent (a token pasted as a key): never shown.
    """
    out = ""
    for segment in path:
        if segment in known:
            out += f".{segment}" if out else segment
        else:
            out += "[...]"
    return out or "$"


def check_write(
    scopes: Mapping[str, Scope],
    scope: str,
    data: Any,
    delete: bool,
) -> tuple[Scope, list[str]]:
    """Apply the pre-merge checks in order; return the scope and the branches written.

    Args:
        scopes: The ownership map.
        scope: The scope named by the request.
        data: The request's data, a JSON tree shaped like the whole document.
        delete: Whether owned branches that ``data`` omits are to be deleted.

    Returns:
        The scope and the dotted branch paths the write replaces or deletes.

    Raises:
        InvalidRequest: Unknown scope, or ``data`` is not a JSON object.
        OwnershipViolation: ``data`` holds branches the scope does not own.
        LiveDataInvalid: The scope's own branch is omitted without ``delete``.
    """
    found = scopes.get(scope) if isinstance(scope, str) else None
    if found is None:
        # Only the configured names are shown: an unknown one is whatever the client sent.
        names = ", ".join(sorted(scopes))
        raise InvalidRequest(f"unknown live-data scope (the scopes are: {names})")
    if not isinstance(data, dict):
        raise InvalidRequest("live-data 'data' must be a JSON object shaped like the document")
    if found.kind == "full":
        if not data and not delete:
            raise LiveDataInvalid(f"scope {FULL} wrote an empty document without delete")
        return found, sorted(data)
    if found.kind == "host":
        if EXTENSIONS in data:
            raise OwnershipViolation(
                f"scope {HOST_LOCAL} does not own: {EXTENSIONS} "
                f"(it owns every root key except {EXTENSIONS})"
            )
        if not data and not delete:
            raise LiveDataInvalid(
                f"scope {HOST_LOCAL} omitted its branches (every root key except "
                f"{EXTENSIONS}); send them, or set delete to remove them"
            )
        return found, sorted(data)
    outside = _outside(data, found.paths)
    if outside:
        known = _known_keys(scopes)
        shown = ", ".join(_known_path(p, known) for p in outside[:10])
        more = f" and {len(outside) - 10} more" if len(outside) > 10 else ""
        owns = ", ".join(format_path(p) for p in found.paths)
        raise OwnershipViolation(
            f"scope {safe_scope_name(scope)} does not own: {shown}{more} (it owns {owns})"
        )
    missing = [p for p in found.paths if not _get(data, p)[0]]
    if missing and not delete:
        shown = ", ".join(format_path(p) for p in missing)
        raise LiveDataInvalid(
            f"scope {safe_scope_name(scope)} omitted its branch {shown}; "
            "send it, or set delete to remove it"
        )
    return found, sorted(format_path(p) for p in found.paths)


def merge(base: dict[str, Any] | None, scope: Scope, data: dict[str, Any]) -> dict[str, Any]:
    """The document after ``scope`` writes ``data`` over ``base``.

    Branches the scope does not own come through unchanged; owned branches present
    in ``data`` replace the base's, owned branches absent from it are removed (the
    caller has checked that deleting was asked for).

    Args:
        base: The valid base document (``None`` only for a ``full`` write).
        scope: The writing scope, already checked by :func:`check_write`.
        data: The checked request data.

    Returns:
        A new document; neither argument is modified.

    Raises:
        LiveDataInvalid: A branch's parent in the base is not an object.
    """
    if scope.kind == "full":
        return copy.deepcopy(data)
    if base is None:
        raise LiveDataInvalid(f"scope {safe_scope_name(scope.name)} needs a base document")
    if scope.kind == "host":
        merged = {k: copy.deepcopy(v) for k, v in data.items()}
        if EXTENSIONS in base:
            merged[EXTENSIONS] = copy.deepcopy(base[EXTENSIONS])
        return merged
    merged = copy.deepcopy(base)
    for path in scope.paths:
        present, value = _get(data, path)
        parent: Any = merged
        for depth, segment in enumerate(path[:-1]):
            if segment not in parent:
                if not present:
                    break
                parent[segment] = {}
            parent = parent[segment]
            if not isinstance(parent, dict):
                raise LiveDataInvalid(
                    f"the base's {format_path(path[: depth + 1])} is not an object, so "
                    f"{format_path(path)} cannot be written"
                )
        else:
            if present:
                parent[path[-1]] = copy.deepcopy(value)
            else:
                parent.pop(path[-1], None)
    return merged
