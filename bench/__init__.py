"""actorbus benchmarks, run by ``actorbus bench``."""

from ._harness import Context, Measurement, Scenario, Target
from ._runner import judge, run_bench

__all__ = ["Context", "Measurement", "Scenario", "Target", "judge", "run_bench"]
