"""actorbus benchmarks, run by ``actorbus bench``."""

from ._harness import Context, Measurement, Scenario, Skip, Target
from ._runner import judge, run_bench

__all__ = ["Context", "Measurement", "Scenario", "Skip", "Target", "judge", "run_bench"]
