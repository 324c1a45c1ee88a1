"""The dependency arrows point one way, and nobody reaches into another package's insides.

Rules, checked on every import statement (type-checking imports included):

- ``contracts`` imports only the standard library, msgspec and itself.
- ``bus`` imports only ``bus`` and ``contracts`` of ours (never ``actors``). Inside
  ``bus``, the actor runtime (``bus._runtime``) never imports the socket transport
  (``bus._socket``), and the transport never imports the runtime: it sees the
  runtime only through what it is given.
- ``actors`` imports only ``actors``, ``bus`` and ``contracts`` of ours, and of
  ``bus`` only the runtime's names (never a socket type).
- Outside its top-level package, a module is reached only through a public
  package: the package itself or a subpackage whose name does not start with ``_``
  (``actors.session``), never a module file (``actors.session.recorder``) nor
  anything under a private name (``bus._runtime``).
- Inside a top-level package, a subpackage reaches a sibling subpackage only
  through the sibling package itself (``actors.live`` may import ``actors.session``,
  never ``actors.session.events``), except the packages made for sharing
  (``actors._shared``).
- Tests test through public names, except the internals of what they are named
  for: a test under ``tests/<a>/<b>/`` may import every module of the package its
  folder mirrors (``tests/bus/runtime`` -> ``bus._runtime``, ``tests/actors/shared``
  -> ``actors._shared``, ``tests/app`` -> ``actorbus``). Any other white-box import
  says why on its own line: ``# layering: white-box, <reason>``.
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
#: Subpackages whose modules their sibling subpackages may import.
SHARED = {"actors._shared"}


RUNTIME_ERRORS = {"ActorStopped", "AskTimeout", "BusError", "SubscriberLagged"}
#: Test folders whose names differ from the package they mirror.
MIRRORS = {("app",): "actorbus"}


def runtime_names() -> set[str]:
    """The names ``bus`` re-exports from its actor runtime (what ``actors`` may use)."""
    tree = ast.parse((ROOT / "bus" / "_runtime" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            return {ast.literal_eval(elt) for elt in node.value.elts} | RUNTIME_ERRORS  # type: ignore[attr-defined]
    raise AssertionError("bus/_runtime/__init__.py has no __all__")


RUNTIME_NAMES = runtime_names()


def imported_modules(tree: ast.AST, package: str | None) -> list[tuple[int, str, list[str]]]:
    """Every module an import statement names (relative made absolute), with the names taken."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names = [alias.name for alias in node.names]
            found.append((node.lineno, module, names))
            # ``from bus import _cell`` or ``from actors.session import recorder`` reach a
            # module as well.
            found.extend(
                (node.lineno, f"{module}.{name}", [])
                for name in names
                if is_module(f"{module}.{name}") or (name.startswith("_") and name[1:2] != "_")
            )
    return found


def is_module(module: str) -> bool:
    """Whether ``module`` names a module file of ours (not a package)."""
    return (ROOT / (module.replace(".", "/") + ".py")).is_file()


def is_internal(module: str) -> bool:
    """Whether ``module`` is an inside of its top-level package: a private name or a file."""
    parts = module.split(".")
    if any(part.startswith("_") and not part.startswith("__") for part in parts[1:]):
        return True
    return len(parts) > 1 and is_module(module)


def mirrored_package(relpath: str) -> str | None:
    """The package a test folder mirrors (``tests/bus/runtime/x.py`` -> ``bus._runtime``)."""
    folders = Path(relpath).parts[1:-1]
    if not folders:
        return None
    if folders in MIRRORS:
        return MIRRORS[folders]
    dotted = [folders[0]]
    for folder in folders[1:]:
        here = ROOT.joinpath(*dotted)
        dotted.append(
            folder
            if (here / folder).is_dir() or not (here / f"_{folder}").is_dir()
            else f"_{folder}"
        )
    return ".".join(dotted)


def violations(relpath: str, source: str) -> list[str]:
    """The layering rules one file breaks, as ``path:line: reason``."""
    parts = Path(relpath).with_suffix("").parts
    top = parts[0]
    package = None if top == "tests" else ".".join(parts[:-1])
    tree = ast.parse(source, relpath)
    lines = source.splitlines()
    problems: list[str] = []
    for line, module, names in imported_modules(tree, package):
        head = module.split(".")[0]
        where = f"{relpath}:{line}"
        foreign = head not in OURS and head not in sys.stdlib_module_names
        if top == "contracts" and foreign and head not in CONTRACTS_THIRD_PARTY:
            problems.append(f"{where}: contracts imports {module} (stdlib and msgspec only)")
        if top in ALLOWED_OF_OURS and head in OURS and head not in ALLOWED_OF_OURS[top]:
            problems.append(f"{where}: {top} imports {module}")
        if package and package.startswith("bus._runtime") and module.startswith("bus._socket"):
            problems.append(f"{where}: the runtime imports the socket transport ({module})")
        if package and package.startswith("bus._socket") and module.startswith("bus._runtime"):
            problems.append(f"{where}: the socket transport imports the runtime ({module})")
        if top == "actors" and module == "bus":
            socket_names = sorted(set(names) - RUNTIME_NAMES)
            if socket_names:
                problems.append(f"{where}: actors imports bus names of the socket: {socket_names}")
        if package and head == top and reaches_into_sibling(package, module):
            problems.append(f"{where}: reaches into a sibling package's module {module}")
        if head in OURS and head != top and is_internal(module):
            mirror = mirrored_package(relpath) if top == "tests" else None
            allowed = mirror is not None and (module == mirror or module.startswith(f"{mirror}."))
            if not allowed and WHITE_BOX not in lines[line - 1]:
                problems.append(f"{where}: imports the internal module {module}")
    return problems


def reaches_into_sibling(package: str, module: str) -> bool:
    """Whether ``package`` imports a module inside a sibling subpackage (not the sibling)."""
    here, there = package.split("."), module.split(".")
    if len(here) < 2 or len(there) < 3 or here[1] == there[1]:
        return False
    sibling = ".".join(there[:2])
    return sibling not in SHARED and (ROOT / there[0] / there[1]).is_dir()


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
        ("bus/_runtime/cell.py", "from actors import SessionWriter\n", "bus imports actors"),
        ("bus/_runtime/cell.py", "import actors.session.writer\n", "bus imports actors"),
        (
            "bus/_runtime/cell.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from actorbus import cli\n",
            "bus imports actorbus",
        ),
        ("bus/_runtime/cell.py", "from .._socket.wire import Request\n", "imports the socket"),
        (
            "bus/_socket/server.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .._runtime import Bus\n",
            "transport imports the runtime",
        ),
        ("contracts/_x.py", "import anyio\n", "contracts imports anyio"),
        ("contracts/_x.py", "from bus import Actor\n", "contracts imports bus"),
        ("actors/session/writer.py", "from bus import Actor, Part\n", "socket: ['Part']"),
        ("actors/session/writer.py", "from bus._runtime.cell import Cell\n", "bus._runtime.cell"),
        ("actors/session/writer.py", "from bus import _runtime\n", "module bus._runtime"),
        ("actorbus/cli.py", "import contracts._errors\n", "internal module contracts._errors"),
        ("actorbus/_ops.py", "from actors.session.order import X\n", "actors.session.order"),
        ("actorbus/_ops.py", "from actors.session import order\n", "actors.session.order"),
        ("tests/bus/runtime/test_topic.py", "from bus._socket.wire import R\n", "bus._socket"),
        ("tests/actors/shared/test_privacy.py", "from actors.live.engine import E\n", "engine"),
        ("tests/bench/test_x.py", "import actors.live.facade\n", "actors.live.facade"),
        ("actors/live/engine.py", "from ..session.events import E\n", "sibling package"),
        ("actors/enrich/run.py", "from actors.live.scopes import S\n", "sibling package"),
        ("actorbus/http/data.py", "from ..ops.live import LiveOps\n", "sibling package"),
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
            "bus/_runtime/system.py",
            "from .cell import Cell\nfrom contracts import BusConfig\nimport anyio\n",
        ),
        ("bus/__init__.py", "from ._runtime import Actor\nfrom ._socket import Server\n"),
        (
            "contracts/_config.py",
            "import msgspec\nfrom typing import Literal\nfrom ._base import Base\n",
        ),
        (
            "actors/session/writer.py",
            "from bus import Actor, Later\nfrom contracts import InvalidEvent\n",
        ),
        ("actorbus/_ops.py", "from actors.session import Recorder\nfrom actors import LiveData\n"),
        ("tests/bus/runtime/test_cell.py", "from bus._runtime.cell import THROUGHPUT\n"),
        ("tests/actors/enrich/test_store.py", "from actors.enrich.keys import key_of\n"),
        ("tests/actors/shared/test_privacy.py", "from actors._shared.privacy import X\n"),
        ("tests/app/test_ops.py", "from actorbus._metrics import prometheus_text\n"),
        ("tests/bench/test_socket.py", "from bench._harness import Context\n"),
        ("actors/live/engine.py", "from .._shared.numbers import unportable\n"),
        ("actorbus/http/data.py", "from ..ops import LiveOps\n"),
        ("bus/_socket/http/protocol.py", "from ..ordering import Part\n"),
        (
            "tests/actors/shared/test_privacy.py",
            "from actors.live.engine import E  # layering: white-box, the gate in place\n",
        ),
    ],
)
def test_allowed_imports_pass(relpath: str, source: str) -> None:
    assert violations(relpath, source) == []


#: Where import cycles between modules are not allowed, type-checking imports
#: included: everywhere.
ACYCLIC = ("actorbus", "actors", "bus", "contracts")


def module_graph() -> dict[str, set[str]]:
    """Every module of ours and the modules of ours it imports."""
    files = {}
    for top in ("actorbus", "actors", "bus", "contracts"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = imported_modules(ast.parse(path.read_text()), package)
        graph[name] = {module for _, module, _ in found if module in files and module != name}
    return graph


def in_a_cycle(graph: dict[str, set[str]], start: str) -> bool:
    """Whether ``start`` reaches itself through the graph."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node == start:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return False


def test_no_import_cycles_between_modules() -> None:
    graph = module_graph()
    held = [m for m in graph if any(m == p or m.startswith(f"{p}.") for p in ACYCLIC)]
    assert len(held) > 40
    assert [m for m in held if in_a_cycle(graph, m)] == []


def test_an_import_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [m for m in sorted(graph) if in_a_cycle(graph, m)] == ["a", "b", "c"]
