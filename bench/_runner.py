"""Running every scenario once, judging targets as ratios, and reporting."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from actorbus import Progress
from bus import run, uvloop_available

from ._harness import Context, Measurement, Scenario, Skip, Target, cpu_count
from ._registry import all_scenarios

__all__ = ["judge", "judge_target", "run_bench"]


def _measure(scenario: Scenario, ctx: Context) -> Measurement:
    if scenario.is_async:
        result: Measurement = run(scenario.fn, ctx)  # type: ignore[arg-type]
        return result
    return scenario.fn(ctx)  # type: ignore[return-value]


def judge(scenario: Scenario, value: float, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The verdict on the scenario's first target against the figures of the same run."""
    if scenario.target is None:
        return {}
    return judge_target(scenario.target, value, results)


def judge_target(
    target: Target, value: float, results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The verdict on one target against the figures of the same run."""
    verdict: dict[str, Any] = {
        "baseline": target.baseline,
        "required_ratio": target.ratio,
        "better": target.better,
    }
    if target.baseline is None:
        verdict["ratio"] = None
        reference = target.ratio
        met = value >= reference if target.better == "higher" else value <= reference
    else:
        base = results.get(target.baseline)
        if base is None or not base.get("value"):
            verdict.update(ratio=None, met=None, note="baseline not measured in this run")
            return verdict
        ratio = value / base["value"]
        verdict["ratio"] = round(ratio, 3)
        met = ratio >= target.ratio if target.better == "higher" else ratio <= target.ratio
    verdict["met"] = met
    return verdict


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _table(rows: list[tuple[str, dict[str, Any]]], out: TextIO) -> None:
    header = ("scenario", "value", "unit", "ratio", "target", "met")
    lines = [header]
    # A scenario with more than one target has a line per target.
    expanded = [
        (name, entry, target)
        for name, entry in rows
        for target in [entry.get("target") or {}, *entry.get("also", ())]
    ]
    for name, entry, target in expanded:
        ratio = target.get("ratio")
        if target:
            sign = ">=" if target["better"] == "higher" else "<="
            base = target["baseline"] or "absolute"
            wanted = f"{sign} {target['required_ratio']:g} x {base}"
            if target["baseline"] is None:
                wanted = f"{sign} {target['required_ratio']:g}"
            met = {True: "yes", False: "NO", None: "?"}[target.get("met")]
        else:
            wanted, met = ("baseline" if entry.get("baseline") else "-"), ""
        lines.append(
            (
                name,
                _fmt(entry["value"]),
                entry["unit"],
                "" if ratio is None else f"{ratio:.2f}x",
                wanted,
                met,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        cells = [
            str(c).rjust(w) if 0 < j < 2 else str(c).ljust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


def run_bench(
    *,
    quick: bool,
    json_path: Path | None = None,
    only: Sequence[str] = (),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    scenarios: Sequence[Scenario] | None = None,
) -> int:
    """Run the scenarios (all, or those whose names start with one of ``only``).

    Args:
        quick: Smaller workloads.
        json_path: Where to write the figures as JSON, if anywhere.
        only: Name prefixes to select scenarios.
        out: Where the table goes.
        err: Where progress goes.
        scenarios: The scenarios to choose from (default: every registered one).

    Returns:
        0 when every target with a measured baseline was met, 1 otherwise.
    """
    pool = all_scenarios() if scenarios is None else list(scenarios)
    chosen = {s.name for s in pool if not only or s.name.startswith(tuple(only))}
    # A chosen scenario's baseline runs too, or its target could not be judged.
    chosen |= {
        t.baseline for s in pool if s.name in chosen for t in s.targets if t.baseline is not None
    }
    scenarios = [s for s in pool if s.name in chosen]
    if not scenarios:
        print(f"actorbus bench: no scenario matches {list(only)}", file=err)
        return 2
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    progress = Progress(err, len(scenarios))
    workdir = Path(tempfile.mkdtemp(prefix="actorbus-bench-"))
    started = time.perf_counter()
    try:
        for index, scenario in enumerate(scenarios):
            progress.start(index, scenario.name)
            scratch = workdir / f"{index:02d}"
            scratch.mkdir()
            ctx = Context(quick=quick, workdir=scratch, progress=progress.update)
            try:
                measurement = _measure(scenario, ctx)
            except Skip as skip:
                skipped[scenario.name] = str(skip)
                continue
            entry: dict[str, Any] = {
                "value": measurement.value,
                "unit": measurement.unit,
                **measurement.extra,
                "baseline": scenario.baseline,
                "doc": scenario.doc,
            }
            verdict = judge(scenario, measurement.value, results)
            if verdict:
                entry["target"] = verdict
            if scenario.also:
                entry["also"] = [judge_target(t, measurement.value, results) for t in scenario.also]
            results[scenario.name] = entry
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        progress.finish()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    _table(list(results.items()), out)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=out)
    missed = [
        n
        for n, e in results.items()
        if any(v.get("met") is False for v in [e.get("target") or {}, *e.get("also", ())])
    ]
    print(
        f"\n{len(results)} scenarios in {elapsed:.1f}s ({'quick' if quick else 'full'}); "
        + (f"targets missed: {', '.join(missed)}" if missed else "every target met"),
        file=out,
    )
    if json_path is not None:
        document = {
            "scenarios": results,
            "skipped": skipped,
            "meta": {
                "quick": quick,
                "elapsed_s": round(elapsed, 2),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": cpu_count(),
                "uvloop": uvloop_available(),
            },
        }
        json_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"wrote {json_path}", file=out)
    return 1 if missed else 0
