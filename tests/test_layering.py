"""The dependency arrows point one way, and nobody reaches into another package's privates.

Rules, checked on every import statement (type-checking imports included):

- ``contracts`` imports only the standard library, msgspec and itself.
- ``bus`` imports only ``bus`` and ``contracts`` of ours (never ``actors``).
- ``actors`` imports only ``actors``, ``bus`` and ``contracts`` of ours.
- A private module (a dotted part starting with ``_``, such as ``bus._cell``) is
  imported only from inside its own package.
- Tests test through public names, except the internals of what they are named
  for: ``tests/test_<topic>[_more].py`` may import the private modules whose name
  starts with ``_<topic>`` (``test_cell`` -> ``bus._cell``, ``test_enrich_store``
  -> ``actors._enrich_keys``), and every private module of a package named
  ``<topic>`` (``test_bench_socket`` -> ``bench._harness``). Any other white-box
  import says why on its own line: ``# layering: white-box, <reason>``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("actorbus", "actors", "bench", "bus", "contracts")
ALLOWED_OF_OURS = {
    "contracts": {"contracts"},
    "bus": {"bus", "contracts"},
    "actors": {"actors", "bus", "contracts"},
}
CONTRACTS_THIRD_PARTY = {"msgspec"}
WHITE_BOX = "# layering: white-box,"


def imported_modules(tree: ast.AST, package: str | None) -> list[tuple[int, str]]:
    """Every module an import statement names, relative imports made absolute."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if "." not in module:
                # ``from bus import _cell`` reaches a private module as well.
                found.extend(
                    (node.lineno, f"{module}.{alias.name}")
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                )
    return found


def is_private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


def violations(relpath: str, source: str) -> list[str]:
    """The layering rules one file breaks, as ``path:line: reason``."""
    parts = Path(relpath).with_suffix("").parts
    top = parts[0]
    package = None if top == "tests" else ".".join(parts[:-1])
    tree = ast.parse(source, relpath)
    lines = source.splitlines()
    problems: list[str] = []
    for line, module in imported_modules(tree, package):
        head = module.split(".")[0]
        where = f"{relpath}:{line}"
        foreign = head not in OURS and head not in sys.stdlib_module_names
        if top == "contracts" and foreign and head not in CONTRACTS_THIRD_PARTY:
            problems.append(f"{where}: contracts imports {module} (stdlib and msgspec only)")
        if top in ALLOWED_OF_OURS and head in OURS and head not in ALLOWED_OF_OURS[top]:
            problems.append(f"{where}: {top} imports {module}")
        if head in OURS and is_private(module) and head != top:
            allowed = top == "tests" and may_import_from_test(parts[-1], module)
            if not allowed and WHITE_BOX not in lines[line - 1]:
                problems.append(f"{where}: imports the private module {module}")
    return problems


def may_import_from_test(test_name: str, module: str) -> bool:
    """Whether ``tests/<test_name>.py`` may import the private ``module`` by its name."""
    if not test_name.startswith("test_"):
        return False
    topic = test_name.removeprefix("test_").split("_")[0]
    package, first, *_ = [*module.split("."), ""]
    return package == topic or first.startswith(f"_{topic}")


def our_files() -> list[Path]:
    files: list[Path] = []
    for top in (*OURS, "tests"):
        files.extend(sorted((ROOT / top).rglob("*.py")))
    return files


def test_the_real_tree_keeps_the_layering() -> None:
    problems: list[str] = []
    for path in our_files():
        problems.extend(violations(str(path.relative_to(ROOT)), path.read_text()))
    assert problems == [], "\n".join(problems)


def test_the_scan_covers_every_package() -> None:
    scanned = {path.relative_to(ROOT).parts[0] for path in our_files()}
    assert {"bus", "contracts", "actors", "tests"} <= scanned


@pytest.mark.parametrize(
    ("relpath", "source", "reason"),
    [
        ("bus/_cell.py", "from actors import SessionWriter\n", "bus imports actors"),
        ("bus/_cell.py", "import actors._writer\n", "bus imports actors._writer"),
        (
            "bus/_cell.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from actorbus import cli\n",
            "bus imports actorbus",
        ),
        ("contracts/_x.py", "import anyio\n", "contracts imports anyio"),
        ("contracts/_x.py", "from bus import Actor\n", "contracts imports bus"),
        ("actors/_writer.py", "from bus._cell import Cell\n", "private module bus._cell"),
        ("actors/_writer.py", "from bus import _cell\n", "private module bus._cell"),
        ("actorbus/cli.py", "import contracts._errors\n", "private module contracts._errors"),
        ("tests/test_topic.py", "from bus._cell import Cell\n", "private module bus._cell"),
        ("tests/test_privacy.py", "from actors._live_engine import E\n", "actors._live_engine"),
        ("tests/test_bench.py", "import actors._live_data\n", "private module actors._live"),
    ],
)
def test_a_broken_rule_is_reported_with_file_and_line(
    relpath: str, source: str, reason: str
) -> None:
    problems = violations(relpath, source)
    assert problems, f"{source!r} in {relpath} passed"
    assert any(reason in p for p in problems), problems
    assert all(p.startswith(f"{relpath}:") for p in problems)


@pytest.mark.parametrize(
    ("relpath", "source"),
    [
        (
            "bus/_system.py",
            "from ._cell import Cell\nfrom contracts import BusConfig\nimport anyio\n",
        ),
        ("bus/__init__.py", "from ._actor import Actor\n"),
        (
            "contracts/_config.py",
            "import msgspec\nfrom typing import Literal\nfrom ._base import Base\n",
        ),
        ("actors/_writer.py", "from bus import Actor\nfrom contracts import InvalidEvent\n"),
        ("tests/test_cell.py", "from bus._cell import THROUGHPUT\n"),
        (
            "tests/test_errors.py",
            "from contracts._errors import ERRORS\nfrom bus._errors import X\n",
        ),
        ("tests/test_enrich_store.py", "from actors._enrich_keys import key_of\n"),
        ("tests/test_enrich_safety.py", "from actors._enrich_safety import _UNSAFE\n"),
        ("tests/test_bench_socket.py", "from bench._harness import Context\n"),
        (
            "tests/test_privacy.py",
            "from actors._live_engine import E  # layering: white-box, the gate in place\n",
        ),
    ],
)
def test_allowed_imports_pass(relpath: str, source: str) -> None:
    assert violations(relpath, source) == []
