"""Session recording: the recorder facade, its writer actors and the session store.

Three layers, as ``docs/recording.md`` describes: the boundary (``events``)
checks what arrives, the recorder and its writers decide, and the backend
(``store`` the protocols) keeps the logs: ``threaded`` runs a blocking store
(``file_store``, the only file IO, opens, locks, writes and closes the logs) on an
IO thread, ``jetstream`` keeps them in NATS JetStream.
"""

from .events import session_path, session_topic
from .file_store import FileSessionStore
from .jetstream import JetStreamSessions
from .order import Exclusive, SessionOrder, session_key
from .recorder import Queued, Recorder
from .store import SessionBackend, SessionStore
from .threaded import ThreadedSessions
from .writer import SessionWriter

__all__ = [
    "Exclusive",
    "FileSessionStore",
    "JetStreamSessions",
    "Queued",
    "Recorder",
    "SessionBackend",
    "SessionOrder",
    "SessionStore",
    "SessionWriter",
    "ThreadedSessions",
    "session_key",
    "session_path",
    "session_topic",
]
