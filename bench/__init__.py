"""actorbus benchmarks, run by ``actorbus bench``."""
