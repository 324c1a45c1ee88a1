"""``actorbus demo``: the main job on an embedded default root, start to finish."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bus import run

from ._demo_runtime import runtime_tour

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    print("actorbus demo: the actor runtime", file=out)
    tour = run(runtime_tour, out)
    rate = tour.messages / tour.seconds if tour.seconds else 0.0
    print(
        "\nsummary\n"
        f"  deposits        {tour.messages:,} to {tour.accounts:,} keyed actors "
        f"in {tour.seconds:.2f}s ({rate:,.0f} msgs/s, 8 producers)\n"
        f"  balances        {'all correct' if tour.total_ok else 'MISMATCH'}\n"
        f"  latency         p50 {tour.p50_us:.1f} us, p99 {tour.p99_us:.1f} us (sampled)\n"
        f"  milestones      {tour.milestones:,} published on a topic and received\n"
        f"  supervision     {tour.restarts} restart after a simulated crash\n"
        f"  passivation     {tour.passivated:,} idle actors passivated\n"
        f"  dead letters    {tour.dead_letters}\n"
        "\nnext: `actorbus bench --quick` measures the runtime against its baselines.",
        file=out,
    )
    return 0 if tour.total_ok else 1


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run a self-contained demonstration and print a summary",
        description="Drive the actor runtime end to end and print what it did.",
    )
    parser.set_defaults(func=_run)
