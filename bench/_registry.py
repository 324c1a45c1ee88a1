"""Where the scenarios live: one module per area, each exposing ``SCENARIOS``."""

from __future__ import annotations

import importlib

from ._harness import Scenario

__all__ = ["MODULES", "all_scenarios"]

#: Scenario modules in run order; baselines are listed inside each module first.
MODULES: list[str] = [
    "bench._runtime",
    "bench._live",
    "bench._socket",
    "bench._enrich",
    "bench._recording",
    "bench._floors",
    "bench._service",
    "bench._http",
    "bench._jetstream",
]


def all_scenarios() -> list[Scenario]:
    """Every scenario of every module, in order."""
    found: list[Scenario] = []
    for name in MODULES:
        found.extend(importlib.import_module(name).SCENARIOS)
    return found
