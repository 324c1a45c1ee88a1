"""The benchmark harness: scenarios, targets as ratios, one run, one report.

A scenario is a named measurement. Baselines (the syscall floor, the naive
per-event discipline, Pykka, a bare socket echo) and ours run in the same process
run, so every target is a ratio of two figures taken on the same machine at the
same moment, never a wall-clock constant.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Context", "Measurement", "Scenario", "Skip", "Target", "best_of"]


class Skip(Exception):
    """Raised by a scenario that cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """What a scenario must reach relative to another scenario measured in the same run.

    ``better="higher"``: ``value >= ratio * baseline``; ``"lower"``:
    ``value <= ratio * baseline``. Without a baseline the target is absolute
    (``value`` compared with ``ratio`` itself), used only for sizes such as bytes.
    """

    baseline: str | None
    ratio: float
    better: Literal["higher", "lower"] = "higher"


@dataclass
class Measurement:
    """One scenario's figure, its unit and anything else worth reporting."""

    value: float
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a scenario gets: the mode, a private scratch directory and a progress hook."""

    quick: bool
    workdir: Path
    progress: Callable[[float], None] = lambda fraction: None

    def scale(self, full: int, quick: int) -> int:
        """The workload size for this mode."""
        return quick if self.quick else full

    def scratch(self, name: str) -> Path:
        """A fresh directory under the run's work directory."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path


ScenarioFn = Callable[[Context], "Measurement | Awaitable[Measurement]"]


@dataclass(frozen=True)
class Scenario:
    """A named measurement; ``fn`` may be sync or async (async runs on uvloop if present)."""

    name: str
    fn: ScenarioFn
    target: Target | None = None
    baseline: bool = False
    doc: str = ""
    #: Targets beyond ``target``, each against its own baseline; all must be met.
    also: tuple[Target, ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every target of the scenario, ``target`` first."""
        return ((self.target,) if self.target is not None else ()) + self.also

    @property
    def is_async(self) -> bool:
        """Whether ``fn`` is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)


def best_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``measure`` ``runs`` times; return the best and every figure.

    Throughput on a shared machine is only ever lowered by interference, so the
    best of a few runs is the least noisy estimate of what the code can do.
    """
    figures = [measure() for _ in range(runs)]
    return max(figures), figures


def cpu_count() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
