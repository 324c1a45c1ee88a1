"""``actorbus bench``: every scenario in one run, targets judged as ratios."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from bench import run_bench

    return run_bench(quick=args.quick, json_path=args.json, only=args.only)


def register(subparsers: Any) -> None:
    """Add the ``bench`` command."""
    parser = subparsers.add_parser(
        "bench",
        help="measure throughput, latency and memory against baselines in one run",
        description=(
            "Run every benchmark scenario (baselines included) in one process run and judge "
            "each target as a ratio against a baseline measured in the same run. Exits 1 "
            "when a target is missed."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller workloads (about a quarter of the full run's time, docs/benchmarks.md)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PREFIX",
        help="run only scenarios whose name starts with PREFIX (repeatable)",
    )
    parser.set_defaults(func=_run)
