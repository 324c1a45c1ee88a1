"""What the live-data and enrichment actors share: the privacy gate and the named lock."""

from .named_lock import LockHandle, NamedLock, OwnerRecord
from .privacy import PrivacyGate, PrivacyHit

__all__ = ["LockHandle", "NamedLock", "OwnerRecord", "PrivacyGate", "PrivacyHit"]
