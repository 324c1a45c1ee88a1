"""How the tree reads: files and lines per folder, import cycles, and the append trip.

Run from a checkout's root: ``python -m bench.layout_metrics [--json PATH]``. It reports

- files and lines per product folder, and the largest module;
- the import cycles between modules (strongly connected components of the import
  graph, type-checking-only imports included), each as its modules;
- the append trip: one service (``actorbus.open_service``) on a temporary root, a
  client pipelining JSON Lines appends over its Unix socket, and a profiler on every
  thread counting, per acknowledged append, the calls whose caller and callee are in
  different modules of ours, and the modules met on the way.

Only the public ``open_service`` and the socket protocol are used, so it measures any
version of the tree the same way.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import socket
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

PACKAGES = ("actorbus", "actors", "bus", "contracts")
ROOT = Path.cwd()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sizes() -> dict[str, Any]:
    folders: dict[str, dict[str, int]] = {}
    largest = ("", 0)
    for package in (*PACKAGES, "tests", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            folder = str(path.parent.relative_to(ROOT))
            entry = folders.setdefault(folder, {"files": 0, "lines": 0})
            entry["files"] += 1
            entry["lines"] += lines
            if package in PACKAGES and lines > largest[1]:
                largest = (str(path.relative_to(ROOT)), lines)
    return {"folders": folders, "largest": {"module": largest[0], "lines": largest[1]}}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            # A package and the modules it re-exports are one unit, not a cycle.
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(found)


def ours(filename: str) -> str | None:
    try:
        rel = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.parts[0] not in PACKAGES:
        return None
    return module_name(ROOT / rel)


def append_trip(window: int, count: int = 2000, warmup: int = 500) -> dict[str, Any]:
    """Profile ``count`` appends sent ``window`` at a time (1: each waits for its answer)."""
    from actorbus import open_service

    calls: Counter[tuple[str, str]] = Counter()
    modules: Counter[str] = Counter()
    counting = threading.Event()
    names: dict[str, str | None] = {}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call" or not counting.is_set():
            return
        code = frame.f_code
        callee = names.get(code.co_filename, "?")
        if callee == "?":
            callee = names[code.co_filename] = ours(code.co_filename)
        if callee is None:
            return
        modules[callee] += 1
        back = frame.f_back
        while back is not None:
            caller = names.get(back.f_code.co_filename, "?")
            if caller == "?":
                caller = names[back.f_code.co_filename] = ours(back.f_code.co_filename)
            if caller is not None:
                if caller != callee:
                    calls[(caller, callee)] += 1
                return
            back = back.f_back  # a library frame between two of ours: look past it

    def line(n: int) -> bytes:
        event = {"record_id": f"r{n}", "user_id": "u1", "session_id": "s1", "source": "t"}
        return json.dumps({"id": n, "op": "append", "event": event}).encode() + b"\n"

    def client(path: str, first: int, n: int, window: int) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            got = b""
            for start in range(first, first + n, window):
                sock.sendall(b"".join(line(i) for i in range(start, start + window)))
                want = got.count(b"\n") + window
                while got.count(b"\n") < want:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise RuntimeError("the service closed the connection")
                    got += chunk
            bad = [x for x in got.splitlines() if b'"status":201' not in x]
            if bad:
                raise RuntimeError(f"{len(bad)} appends were not acknowledged")

    async def main(root: Path) -> None:
        async with open_service(root) as service:
            await service.recorder.open_session("u1", "s1")
            path = str(service.socket_path)
            await asyncio.to_thread(client, path, 0, warmup, window)
            threading.setprofile(profile)
            sys.setprofile(profile)
            counting.set()
            try:
                await asyncio.to_thread(client, path, warmup, count, window)
            finally:
                counting.clear()
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]

    with tempfile.TemporaryDirectory(prefix="ab-trip-", dir="/tmp") as tmp:
        asyncio.run(main(Path(tmp)))
    modules_seen = sorted(modules)
    return {
        "window": window,
        "appends": count,
        "modules": len(modules_seen),
        "module_names": modules_seen,
        "cross_module_calls_per_append": round(sum(calls.values()) / count, 2),
        "packages": sorted({m.split(".")[0] for m in modules_seen}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = import_graph()
    report = {
        **sizes(),
        "import_cycles": cycles(graph),
        "append_trip_lone": append_trip(window=1, count=300, warmup=100),
        "append_trip_pipelined": append_trip(window=250),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
