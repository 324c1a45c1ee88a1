"""actorbus actors: the session writers, the live-data gate and the enrichment cache."""

__all__: list[str] = []
