"""The dashboard's static files (HTML, CSS, JavaScript), served by ``actorbus.http``."""

__all__: list[str] = []
