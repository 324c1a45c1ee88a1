"""Session recording: the recorder facade, its writer actors and the session store.

Three layers, as ``docs/recording.md`` describes: the boundary (``events``,
``naming``) checks what arrives, the recorder and its writers decide, and the
store (``store`` the protocol, ``file_store`` the one implementation and the only
file IO) opens, locks, writes and closes the logs.
"""

from .events import session_path, session_topic
from .file_store import FileSessionStore
from .order import Exclusive, SessionOrder, session_key
from .recorder import Queued, Recorder
from .store import SessionStore
from .writer import SessionWriter

__all__ = [
    "Exclusive",
    "FileSessionStore",
    "Queued",
    "Recorder",
    "SessionOrder",
    "SessionStore",
    "SessionWriter",
    "session_key",
    "session_path",
    "session_topic",
]
