"""The base Struct every actorbus wire type derives from."""

from __future__ import annotations

import msgspec

__all__ = ["Base"]


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=False):
    """Shared settings for our own wire types.

    Frozen (messages are values, safe to hand between actors), unknown fields
    forbidden (a typo in a client is an error, not a silent default). New fields go
    last and carry defaults so older peers keep decoding.
    """
