"""Single-writer guardrail: only the writer's IO module touches session logs.

Why: a session log is an append-only record whose guarantees (no torn line, no
interleaving across processes, nothing partial after a failed write, per-session
order) hold only because every write goes through one discipline: open with
O_APPEND and O_NOFOLLOW, flock that descriptor, one ``write()`` of complete lines,
truncate back on failure, close. A second code path that opens, locks or writes
those files, however well meant, would silently bypass it. So this test reads the
source of every product package and fails, naming file and line, when a module
that deals with session logs (it builds their paths or names their suffix) uses a
file-writing, file-opening or locking primitive, unless it is the IO module
(``actors/session/file_store.py``), or the session manager creating the session directory
(``actors/session/manager.py``, mkdir only).

The scan is of the product packages (``bus``, ``actors``, ``contracts``,
``actorbus``); tests and benchmarks write their own scratch files and never a
service root's logs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ["bus", "actors", "contracts", "actorbus"]

IO_MODULE = "actors/session/file_store.py"
SESSION_MANAGER = "actors/session/manager.py"

#: module -> attribute names that open, write, truncate or lock files.
PRIMITIVES = {
    "os": {
        "open",
        "write",
        "writev",
        "pwrite",
        "pwritev",
        "ftruncate",
        "truncate",
        "fsync",
        "fdatasync",
        "replace",
        "rename",
        "link",
        "symlink",
        "mkdir",
        "makedirs",
        "mkfifo",
    },
    "fcntl": {"flock", "lockf", "fcntl"},
    "io": {"open", "FileIO"},
    "builtins": {"open"},
    "shutil": {"copy", "copy2", "copyfile", "move", "copytree"},
    "aiofiles": {"open"},
    "anyio": {"open_file"},
}
#: Methods of paths and file objects that do the same.
METHODS = {"open", "write_text", "write_bytes", "touch", "mkdir", "open_file"}
MKDIR = {"mkdir", "makedirs"}


def touches_session_logs(tree: ast.AST) -> bool:
    """Whether a module deals with session logs: it names their suffix or path."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (".jsonl" in node.value or node.value == "sessions")
        ):
            return True
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in {"session_path", "log_path", "create_session_dir"}:
                return True
    return False


def violations(source: str, filename: str, *, allow_mkdir: bool = False) -> list[str]:
    """Every use of a file primitive in a module that deals with session logs."""
    tree = ast.parse(source, filename)
    if not touches_session_logs(tree):
        return []
    modules: dict[str, str] = {}  # local name -> module it is bound to
    imported: dict[str, str] = {}  # local name -> primitive it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in PRIMITIVES:
            for alias in node.names:
                if alias.name in PRIMITIVES[node.module]:
                    imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        hit = None
        if isinstance(node, ast.Attribute):
            base = node.value
            module = modules.get(base.id) if isinstance(base, ast.Name) else None
            if module in PRIMITIVES and node.attr in PRIMITIVES[module]:
                hit = f"{module}.{node.attr}"
            elif module is None and node.attr in METHODS:
                hit = f".{node.attr}()"
        elif isinstance(node, ast.Name):
            if node.id in imported:
                hit = imported[node.id]
            elif node.id == "open" and isinstance(node.ctx, ast.Load):
                hit = "open"
        if hit is None:
            continue
        if allow_mkdir and hit.rsplit(".", 1)[-1].rstrip("()") in MKDIR:
            continue
        found.append(f"{filename}:{node.lineno}: {hit} in a module that deals with session logs")
    return found


def product_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_only_the_io_module_opens_locks_or_writes_session_logs() -> None:
    problems = []
    for path in product_modules():
        relative = path.relative_to(REPO).as_posix()
        if relative == IO_MODULE:
            continue
        problems += violations(path.read_text(), relative, allow_mkdir=relative == SESSION_MANAGER)
    assert not problems, "\n".join(problems)


def test_the_io_module_and_the_session_manager_are_where_the_guardrail_expects() -> None:
    io_source = (REPO / IO_MODULE).read_text()
    assert violations(io_source, IO_MODULE), "the IO module should be the one doing the IO"
    manager = (REPO / SESSION_MANAGER).read_text()
    assert violations(manager, SESSION_MANAGER) and not violations(
        manager, SESSION_MANAGER, allow_mkdir=True
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "import os\nfd = os.open(session_path(root, u, s), os.O_WRONLY)\n",
        "import fcntl\nfcntl.flock(fd, fcntl.LOCK_EX)\nname = 'x.jsonl'\n",
        "from os import write as w\nw(fd, b'x')\nNAME = 'sessions'\n",
        "p = session_path(root, u, s)\nwith open(p, 'a') as f:\n    f.write('x')\n",
        "p = session_path(root, u, s)\np.write_bytes(b'x')\n",
        "import os as o\nW = o.write\nsuffix = '.jsonl'\n",
        "p = session_path(root, u, s)\np.parent.mkdir(parents=True)\n",
    ],
)
def test_the_scan_catches_a_second_writer(snippet: str) -> None:
    found = violations(snippet, "actors/_rogue.py")
    assert found and found[0].startswith("actors/_rogue.py:")


def test_modules_that_never_deal_with_session_logs_are_left_alone() -> None:
    assert violations("import os\nfd = os.open('live-data.json', os.O_RDONLY)\n", "x.py") == []
