"""Numbers every reader can carry: the check that keeps acknowledged data readable.

The service hands recorded events and the live-data document back as JSON and as
MessagePack. A value is accepted only if both can carry it, so what was
acknowledged reads back through every framing (``docs/protocol.md``, "Numbers"):

- integers from -2**63 to 2**64 - 1 (what MessagePack's integer types hold);
- finite floats: no NaN and no Infinity (JSON has neither, and msgspec would
  write ``null`` instead, which is a repair), and no JSON literal so large that
  it overflows a double (``1e400``).

For JSON text the check is in two steps, so the common event pays only one fold
and two searches in C: :func:`json_suspect` looks for what an unportable number
needs (a run of 19 digits, or an exponent of three or more digits), and only then
:func:`json_unportable` decodes the text to be sure. A false suspicion (a long
digit run inside a string) costs one decode and passes. :func:`json_plain` answers
in the same single pass whether the text is also one ASCII line, so the recording
boundary scans each event once.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "json_plain",
    "json_suspect",
    "json_unportable",
    "unportable",
]

#: The smallest integer MessagePack carries (int64).
INT_MIN = -(2**63)
#: The largest integer MessagePack carries (uint64).
INT_MAX = 2**64 - 1

# One translation (a C loop over the bytes) folds what matters into four bytes, and
# substring searches (memchr and memmem in C) then find every shape an unportable
# number can take. Digits and "+" read as "0", "e" and "E" as "e", line breaks and
# non-ASCII bytes as "\n", everything else as " ".
# - A run of 19 "0": an integer beyond int64 has at least 19 digits, one beyond
#   uint64 at least 20; a float literal that overflows without an exponent has
#   over 300 ("+" only lengthens runs: more suspicion, never less).
# - "0e000": an exponent of three digits or more, signed or not ("e+400" folds to
#   "e0000"). JSON's grammar puts a digit before every exponent, and msgspec holds
#   every number to it even in a field it skips. A float that overflows with a
#   shorter exponent has a long digit run too; negative exponents only underflow
#   to 0.0, which every reader carries.
_FOLD = bytes(
    ord("0")
    if 48 <= c <= 57 or c == 43
    else ord("e")
    if c in b"eE"
    else 10
    if c in b"\n\r" or c >= 128
    else 32
    for c in range(256)
)
_DIGIT_RUN = b"0" * 19
_BIG_EXPONENT = b"0e000"
_DECODE = msgspec.json.Decoder().decode
_ENCODE = msgspec.msgpack.Encoder().encode

_NOT_FINITE = "a float that is NaN or Infinity"
_TOO_BIG_FLOAT = "a number too large for a double"
_TOO_BIG_INT = "an integer outside -2**63 .. 2**64-1"


def json_suspect(raw: bytes) -> bool:
    """Whether JSON text may hold a number that not every reader can carry.

    False means it surely holds none; True means :func:`json_unportable` decides.
    """
    folded = raw.translate(_FOLD)
    return _DIGIT_RUN in folded or _BIG_EXPONENT in folded


def json_plain(raw: bytes) -> bool:
    """Whether text is one line of ASCII that surely holds no unportable number.

    The same as no line feed, no carriage return, ``raw.isascii()`` and ``not json_suspect(raw)``,
    in one pass over the bytes.
    """
    folded = raw.translate(_FOLD)
    return 10 not in folded and _DIGIT_RUN not in folded and _BIG_EXPONENT not in folded


def json_unportable(raw: bytes) -> str | None:
    """What in JSON text cannot be carried by every reader, or ``None`` if nothing.

    Text that is not JSON at all is not judged here (``None``): the caller's own
    decoding reports it.
    """
    try:
        value = _DECODE(raw)
    except msgspec.ValidationError:
        return _TOO_BIG_FLOAT  # msgspec's "Number out of range"
    except (msgspec.DecodeError, RecursionError):
        return None
    try:
        _ENCODE(value)
    except OverflowError:
        return _TOO_BIG_INT
    except (msgspec.EncodeError, RecursionError, TypeError):
        return None
    return None


def unportable(value: Any) -> str | None:
    """What in a decoded JSON tree cannot be carried by every reader, or ``None``.

    Walks the tree without recursion (a deep tree cannot overflow the stack here).
    """
    stack = [value]
    pop = stack.pop
    push = stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            push(item.values())
        elif kind is list or kind is tuple:
            push(item)
        elif kind is float:
            if not math.isfinite(item):
                return _NOT_FINITE
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return _TOO_BIG_INT
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _NOT_FINITE
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT_MIN <= item <= INT_MAX:
                return _TOO_BIG_INT
        elif isinstance(item, dict):
            push(item.values())
        elif isinstance(item, list | tuple):
            push(item)
    return None
