"""A real wheel, installed away from the source tree, gives a working command."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_every_package_and_its_command_runs(tmp_path: Path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    # The license is an SPDX expression with its file: no deprecation warning on build.
    output = built.stdout.decode() + built.stderr.decode()
    assert "deprecated" not in output.lower(), output
    (wheel,) = (tmp_path / "dist").glob("actorbus-*.whl")
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(target)
    for package in ("bus", "actors", "contracts", "bench", "actorbus"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names or package == "bench"
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        fields = archive.read(metadata).decode()
    assert "License-Expression: MIT" in fields and "License-File: LICENSE" in fields
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "actorbus = actorbus.cli:main" in (target / entry_points).read_text()
    # Run from the unpacked wheel only (dependencies from this environment), from a
    # directory where the source tree cannot be imported by accident.
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); "
            "import actorbus, bus; assert bus.__file__.startswith(sys.path[0]); "
            "from actorbus.cli import main; sys.exit(main(['--help']))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "bench" in result.stdout and "demo" in result.stdout
