"""``docs/enrichment.md``'s complete example runs as printed against a real service."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from support.service import REPO, cli, short_root, start_serve, stop

DOC = REPO / "docs" / "enrichment.md"


def _example() -> tuple[str, bytes, list[str]]:
    """The section's TOML, JSON and shell lines, exactly as the doc has them."""
    section = DOC.read_text().split("## A complete example to copy", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```")[1::2]
    toml = next(b for b in blocks if b.startswith("toml\n"))[5:]
    request = next(b for b in blocks if b.startswith("json\n"))[5:].encode()
    shell = [b[3:] for b in blocks if b.startswith("sh\n")]
    return toml, request, shell


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = short_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _enrich_as_printed(command: str, workdir: Path) -> dict:
    args = shlex.split(command)
    assert args[:2] == ["actorbus", "enrich"]
    done = subprocess.run(
        cli(*args[1:]), cwd=workdir, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout)


def test_the_documented_configuration_and_request_run_as_printed(workdir: Path) -> None:
    toml, request, shell = _example()
    (workdir / "enrich.toml").write_text(toml)
    (workdir / "request.json").write_bytes(request)
    serve = shlex.split(shell[0].strip())
    assert serve[:2] == ["actorbus", "serve"]
    root = workdir / serve[serve.index("--root") + 1]
    proc = start_serve(root, "--config", str(workdir / "enrich.toml"))
    try:
        enrich = next(line for line in shell[1].splitlines() if line.startswith("actorbus enrich"))
        first = _enrich_as_printed(enrich, workdir)
        states = [item["state"] for item in first["items"]]
        assert states == ["enriched", "enriched", "ineligible"]
        assert first["spend"]["run"]["state"] == "exact"
        assert 0 < first["spend"]["run"]["usd"] <= 0.02
        again = _enrich_as_printed(enrich, workdir)
        assert [item["state"] for item in again["items"]] == ["hit", "hit", "ineligible"]
        assert again["counts"]["hits"] == 2
        assert again["spend"]["run"]["usd"] == 0
    finally:
        assert stop(proc) == 0
