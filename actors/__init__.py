"""actorbus actors: the session writers, the live-data gate and the enrichment cache."""

from ._recorder import Recorder
from ._session_boundary import session_path, session_topic
from ._session_committer import SessionStore
from ._session_io import FileSessionStore
from ._session_writer import SessionWriter

__all__ = [
    "FileSessionStore",
    "Recorder",
    "SessionStore",
    "SessionWriter",
    "session_path",
    "session_topic",
]
