"""What the actors share: the privacy gate, the named lock and the JetStream connection."""

from .jetstream import JetStream
from .named_lock import LockHandle, NamedLock, OwnerRecord
from .privacy import PrivacyGate, PrivacyHit

__all__ = ["JetStream", "LockHandle", "NamedLock", "OwnerRecord", "PrivacyGate", "PrivacyHit"]
