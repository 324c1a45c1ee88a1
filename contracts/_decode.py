"""Decoding a client's bytes or values into a contract type, with errors safe to show.

msgspec's own messages quote what the client sent: ``Object contains unknown field
`AKIA...``` names the unknown key, ``Invalid enum value 'ghp_...'`` the value. Every
place that decodes client input uses :func:`decode_as` (or :func:`convert_as`, or
maps the exception with :func:`safe_decode_message`), so an error names only the
protocol's own field names and type names, and the path of known keys where the
problem is (``$.items[3].priority``); an unknown key or any value is never repeated.
See ``docs/protocol.md#errors``.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import msgspec

from ._errors import InvalidRequest
from ._protocol import OPS

__all__ = [
    "contract_names",
    "convert_as",
    "decode_as",
    "safe_decode_message",
    "unknown_op_message",
]

T = TypeVar("T")

_AT: Final = " - at `"
# The words msgspec puts between backticks in a type error; nothing a client chose.
_TYPE_WORDS: Final = frozenset(
    {"str", "int", "float", "bool", "null", "array", "object", "bytes", "datetime", "date",
     "time", "timedelta", "uuid", "decimal", "ext"}
)  # fmt: skip
_TICKED: Final = re.compile(r"`([^`]*)`")
_NUMBER: Final = r"-?[0-9][0-9.e+-]*"
# Reasons whose words are all msgspec's own (types, bounds); ticked words are checked.
_SAFE_REASONS: Final = (
    re.compile(r"Expected `[^`]*`(?:, got `[^`]*`)?"),
    re.compile(rf"Expected `[^`]*` (?:of length )?(?:[<>]=?) {_NUMBER}"),
    re.compile(rf"Expected `[^`]*` that is a multiple of {_NUMBER}"),
    re.compile(r"Number out of range"),
    re.compile(r"Integer value out of range"),
)
_MISSING: Final = re.compile(r"Object missing required field `([^`]*)`")
_PATH_PART: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")


# Names per type, found once: the types are the contract's, a fixed few.
_names: dict[Any, frozenset[str]] = {}


def contract_names(type: Any) -> frozenset[str]:
    """Every field name (and tag field) of the Structs ``type`` is made of, at any depth.

    These are the protocol's own names: an error may show them.
    """
    names: set[str] = set()
    seen: set[int] = set()

    def walk(info: Any) -> None:
        if id(info) in seen:
            return
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            if info.tag_field is not None:
                names.add(info.tag_field)
            for field in info.fields:
                names.add(field.encode_name)
                walk(field.type)
            return
        for attr in ("item_type", "key_type", "value_type"):
            inner = getattr(info, attr, None)
            if inner is not None:
                walk(inner)
        for inner in getattr(info, "types", ()) or ():
            walk(inner)
        if isinstance(info, msgspec.inspect.TupleType):
            for inner in info.item_types:
                walk(inner)

    cached = _names.get(type)
    if cached is not None:
        return cached
    walk(msgspec.inspect.type_info(type))
    found = _names[type] = frozenset(names)
    return found


def _safe_path(path: str, names: frozenset[str]) -> str:
    """The path with every key that is not a contract name shown as ``[...]``."""
    if not path.startswith("$"):
        return "$"
    out = ["$"]
    rest = path[1:]
    while rest:
        match = _PATH_PART.match(rest)
        if match is None:
            out.append("[...]")
            break
        key, index = match.groups()
        if key is not None:
            out.append(f".{key}" if key in names else "[...]")
        else:
            out.append(f"[{index}]")
        rest = rest[match.end() :]
    return "".join(out)


def _fields_at(type: Any, path: str) -> list[str] | None:
    """The field names of the Struct at ``path`` in ``type`` (``None`` if not a Struct)."""
    info: Any = msgspec.inspect.type_info(type)
    for part in re.findall(r"\[[^\]]*\]|[^.\[]+", path.removeprefix("$")):
        while isinstance(info, msgspec.inspect.UnionType):
            info = next(
                (t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)), None
            )
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == part), None)
        elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.DictType):
            info = getattr(info, "item_type", None) or getattr(info, "value_type", None)
        else:
            return None
    while isinstance(info, msgspec.inspect.UnionType):
        info = next((t for t in info.types if isinstance(t, msgspec.inspect.StructType)), None)
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    tag = [info.tag_field] if info.tag_field else []
    return tag + [f.encode_name for f in info.fields]


def _safe_reason(reason: str, names: frozenset[str]) -> str:
    """The reason if it is made only of msgspec's words and contract names; else a summary."""
    if any(pattern.fullmatch(reason) for pattern in _SAFE_REASONS):
        words = [w for ticked in _TICKED.findall(reason) for w in ticked.split(" | ")]
        if all(word in _TYPE_WORDS for word in words):
            return reason
        return "a value of the wrong type"
    missing = _MISSING.fullmatch(reason)
    if missing is not None:
        name = missing.group(1)
        return f"Object missing required field `{name}`" if name in names else "a field is missing"
    if reason.startswith("Object contains unknown field"):
        return "an unknown field"
    if reason.startswith(("Invalid enum value", "Invalid value")):
        return "a value that is not one of the allowed values"
    return "an invalid value"


def safe_decode_message(
    exc: BaseException,
    what: str = "request",
    names: frozenset[str] = frozenset(),
    type: Any = None,
) -> str:
    """A message for a decoding failure that never repeats what the client sent.

    Args:
        exc: What msgspec raised (``ValidationError``, ``DecodeError``) or a
            ``RecursionError``.
        what: What was being decoded, for the message (``"request"``, ``"enrich request"``).
        names: The contract's own names (:func:`contract_names`): only these are shown
            as keys in the path or as a missing field.
        type: The type decoded into; an unknown field's message then lists the
            fields the object at that path has.

    Returns:
        ``"invalid <what>: <reason> at `<path>`"``, where the path holds only
        contract names, list positions and ``[...]`` for any other key.
    """
    if isinstance(exc, RecursionError):
        return f"invalid {what}: nested too deeply"
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        reason, _, path = text.partition(_AT)
        at = _safe_path(path.rstrip("`"), names) if path else "$"
        message = f"invalid {what}: {_safe_reason(reason, names)} at `{at}`"
        if reason.startswith("Object contains unknown field") and type is not None:
            fields = _fields_at(type, at)
            if fields is not None:
                message += f" (its fields are: {', '.join(fields)})"
        return message
    if isinstance(exc, msgspec.DecodeError):
        # msgspec's decode errors give a position ("invalid character (byte 12)");
        # anything quoted is dropped all the same.
        detail = re.sub(r"'[^']*'|`[^`]*`", "value", text).split("malformed: ", 1)[-1]
        return f"invalid {what}: not valid input: {detail}"
    return f"invalid {what}"


_json_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_msgpack_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def decode_as(
    data: bytes | bytearray | memoryview | str,
    type: type[T],
    framing: str = "jsonl",
    what: str = "request",
) -> T:
    """Decode JSON (``"jsonl"``) or MessagePack (``"msgpack"``) ``data`` as ``type``.

    Decoders are made once per type and framing and reused.

    Raises:
        InvalidRequest: The data does not decode as ``type``; the message comes from
            :func:`safe_decode_message`.
    """
    try:
        if framing == "msgpack":
            decoder: Any = _msgpack_decoders.get(type)
            if decoder is None:
                decoder = _msgpack_decoders[type] = msgspec.msgpack.Decoder(type)
        else:
            decoder = _json_decoders.get(type)
            if decoder is None:
                decoder = _json_decoders[type] = msgspec.json.Decoder(type)
        result: T = decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise InvalidRequest(safe_decode_message(exc, what, contract_names(type), type)) from None
    return result


def convert_as(value: Any, type: type[T], what: str = "request") -> T:
    """:func:`msgspec.convert` ``value`` (already decoded) to ``type``, errors made safe.

    Raises:
        InvalidRequest: The value does not convert; see :func:`safe_decode_message`.
    """
    try:
        return msgspec.convert(value, type)
    except (msgspec.ValidationError, RecursionError) as exc:
        raise InvalidRequest(safe_decode_message(exc, what, contract_names(type), type)) from None


def unknown_op_message(op: object) -> str:
    """The ``UnknownOp`` message: the op is named only when it is one of the protocol's.

    An op the protocol does not define is whatever the client sent (a token pasted
    in the wrong place), so the message lists the ops instead of repeating it.
    """
    if isinstance(op, str) and op in OPS:
        return f"unknown op {op!r} (this service does not answer it)"
    return "unknown op (the ops are: " + ", ".join(sorted(OPS)) + ")"
