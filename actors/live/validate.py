"""Validation of the live-data document against its contract, without repair.

The document is decoded with msgspec into the contract type; the decoded value is
encoded again and compared with the input. Anything the round trip *adds* (a
default filled in) or *changes* (a value coerced, ``1`` read as ``1.0``) is a
failure, never a fix: the bytes written are always the input's own canonical
encoding. Keys the round trip *drops* are the open part of a contract (a Struct that
does not forbid unknown fields): they pass through untouched, which is how an
extension item carries "at least" ``status`` and ``updated_at``. A root key the
contract does not declare is a host-local branch and must be a JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from contracts import LiveDataInvalid, LiveDocument

from .._shared.numbers import unportable
from .._shared.privacy import format_path, redact

__all__ = ["ContractValidator", "canonical", "pretty"]

_AT = " - at `"
# msgspec's reasons that carry only type and field names from the contract; any
# other reason may quote the input (an enum value, an unknown key) and is replaced.
_SAFE_REASONS = (
    re.compile(r"Expected `[^`]*`(?:, got `[^`]*`)?"),
    re.compile(r"Object missing required field `[A-Za-z0-9_-]*`"),
    re.compile(r"Expected `[^`]*` of length [<>=]+ \d+"),
)


def canonical(document: Any) -> bytes:
    """The compact canonical encoding: sorted keys, no whitespace."""
    return msgspec.json.encode(document, order="sorted")


def pretty(document: Any) -> bytes:
    """The bytes written to disk: sorted keys, two-space indent, final newline.

    The layout is fixed, so the same document always gives the same bytes.
    """
    return msgspec.json.format(canonical(document), indent=2) + b"\n"


def _safe_reason(message: str) -> tuple[str, str]:
    reason, _, path = message.partition(_AT)
    path = path.rstrip("`")
    if not any(p.fullmatch(reason) for p in _SAFE_REASONS):
        if reason.startswith("Invalid enum value"):
            reason = "value is not one of the allowed values"
        elif reason.startswith("Object contains unknown field"):
            reason = "unknown field"
        else:
            reason = "invalid value"
    return redact(reason), redact(path or "$")


def _repairs(
    original: Any,
    decoded: Any,
    path: tuple[str | int, ...],
    out: list[tuple[tuple[str | int, ...], str]],
) -> None:
    """Collect paths where ``decoded`` adds to or differs from ``original``."""
    if isinstance(decoded, dict) and isinstance(original, dict):
        for key, value in decoded.items():
            if key not in original:
                out.append(((*path, key), "a default would be filled in"))
            else:
                _repairs(original[key], value, (*path, key), out)
    elif isinstance(decoded, list) and isinstance(original, list):
        if len(decoded) != len(original):
            out.append((path, "the list would change"))
            return
        for i, (o, d) in enumerate(zip(original, decoded, strict=True)):
            _repairs(o, d, (*path, i), out)
    elif type(decoded) is not type(original) or decoded != original:
        out.append((path, "the value would be coerced"))


class ContractValidator:
    """Checks documents against one contract type.

    Args:
        contract: A msgspec-decodable type; :class:`~contracts.LiveDocument` by default.
        redactor: Masks private text in keys named by an error (default :func:`redact`).
    """

    def __init__(self, contract: Any = None, redactor: Callable[[str], str] | None = None) -> None:
        self._redact = redactor or redact
        self.contract: Any = LiveDocument if contract is None else contract
        self._decoder = msgspec.json.Decoder(self.contract, strict=True)
        info = msgspec.inspect.type_info(self.contract)
        # Root keys the contract names; any other root key is a host-local branch.
        self._declared: frozenset[str] | None = None
        if isinstance(info, msgspec.inspect.StructType) and not info.forbid_unknown_fields:
            self._declared = frozenset(f.encode_name for f in info.fields)

    def validate(self, document: Any) -> bytes:
        """Check ``document``; return its canonical encoding when it is valid.

        Args:
            document: A JSON tree (from :func:`msgspec.json.decode` or a merge).

        Returns:
            The canonical bytes of the document (:func:`canonical`).

        Raises:
            LiveDataInvalid: It does not decode as the contract, decoding would repair
                it, or an undeclared root key is not an object. The message names
                paths and reasons, never values.
        """
        if not isinstance(document, dict):
            raise LiveDataInvalid("the live-data document must be a JSON object")
        try:
            encoded = canonical(document)
            decoded = self._decoder.decode(encoded)
            again = msgspec.json.decode(canonical(decoded))
        except msgspec.ValidationError as exc:
            reason, at = _safe_reason(str(exc))
            raise LiveDataInvalid(f"live data fails its contract at {at}: {reason}") from None
        except (msgspec.DecodeError, msgspec.EncodeError, RecursionError):
            raise LiveDataInvalid("live data is not an encodable JSON document") from None
        repairs: list[tuple[tuple[str | int, ...], str]] = []
        _repairs(document, again, (), repairs)
        if repairs:
            shown = ", ".join(f"{format_path(p, self._redact)} ({why})" for p, why in repairs[:10])
            raise LiveDataInvalid(f"live data would be changed by validation: {shown}")
        if self._declared is not None:
            loose = [
                k
                for k, v in document.items()
                if k not in self._declared and not isinstance(v, dict)
            ]
            if loose:
                shown = ", ".join(format_path((k,), self._redact) for k in sorted(loose)[:10])
                raise LiveDataInvalid(
                    f"live data fails its contract: host-local branches must be objects: {shown}"
                )
        return encoded

    def decode_bytes(self, raw: bytes) -> dict[str, Any]:
        """Parse and validate stored bytes; return the document as a JSON tree.

        Raises:
            LiveDataInvalid: The bytes are not JSON or the document is not valid.
        """
        try:
            document = msgspec.json.decode(raw)
        except msgspec.ValidationError:
            raise LiveDataInvalid(
                "the stored live-data document holds a number too large"
            ) from None
        except (msgspec.DecodeError, RecursionError):
            raise LiveDataInvalid("the stored live-data document is not JSON") from None
        why = unportable(document)
        if why is not None:
            raise LiveDataInvalid(f"the stored live-data document holds {why}")
        self.validate(document)
        assert isinstance(document, dict)  # validate() rejects anything else
        return document
