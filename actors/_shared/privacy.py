"""The privacy gate: nothing private may reach a browser-visible document.

Every key and every string value of a JSON tree is scanned against named rules:
credential formats and private filesystem paths in values (and in keys, since a
key can carry a secret too), and key names that announce secrets, auth payloads,
raw prompts, command output or source dumps. A hit is reported as the JSON path and
the rule's name, never the value; :func:`redact` masks anything rule-shaped in a
text (a path made of keys) before it goes into an error or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import PrivacyViolation

__all__ = [
    "PrivacyGate",
    "PrivacyHit",
    "format_path",
    "is_secret_key",
    "redact",
    "secret_key_rule",
]

# Credential formats. Each is anchored on a prefix the issuer documents, so prose
# that merely mentions tokens or passwords does not match.
_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("aws-access-key-id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ("github-token", r"\bgh[posur]_[A-Za-z0-9]{20,}"),
    ("github-fine-grained-token", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    ("slack-token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("pem-private-key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    # A token after the scheme must look like one (a digit, a case change inside
    # it, or base64 padding), so "Bearer authentication" or "Basic settings" pass.
    (
        "bearer-authorization",
        r"\b[Bb]earer\s+(?=[A-Za-z0-9._~+/-]*(?:[0-9]|[a-z][A-Z]|[A-Z]{2}[a-z]))"
        r"[A-Za-z0-9._~+/-]{16,}=*",
    ),
    (
        "basic-authorization",
        r"\b[Bb]asic\s+(?=[A-Za-z0-9+/]*(?:[0-9]|[a-z][A-Z]|[A-Z]{2}[a-z]|=))"
        r"[A-Za-z0-9+/]{8,}={0,2}",
    ),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("stripe-live-key", r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("url-credentials", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
)

# Private filesystem paths. The look-behind keeps relative asset paths and URL
# paths ("assets/home/x.png", "https://host/home/a/") out: a private path starts
# at the beginning of a value, after whitespace, a quote or a scheme's slashes.
_PATHS: tuple[tuple[str, str], ...] = (
    ("home-directory-path", r"(?<![\w.-])/home/[^/\s]+"),
    ("root-home-path", r"(?<![\w.-])/root(?:/|\b)"),
    ("macos-user-path", r"(?<![\w.-])/Users/[^/\s]+"),
    ("windows-user-path", r"(?i)\b[A-Z]:[\\/]+Users[\\/]+[^\\/\s]+"),
    ("tilde-home-path", r"(?<![\w~/])~[A-Za-z0-9._-]*/"),
)

_KEY_NAMES = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "prompt",
        "raw_prompt",
        "system_prompt",
        "stdout",
        "stderr",
        "command_output",
        "source_dump",
        "raw_source",
    }
)
_KEY_SUFFIXES = ("_password", "_secret", "_token", "_api_key")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class PrivacyHit:
    """One finding: where it is (a JSON path, already redacted) and which rule."""

    path: str
    rule: str


def _value_rules(extra: Iterable[tuple[str, str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(pattern)) for name, pattern in (*_CREDENTIALS, *_PATHS, *extra)]


_DEFAULT_RULES = _value_rules(())


def _root_rules(roots: Sequence[Path]) -> list[tuple[str, str]]:
    texts: set[str] = set()
    for root in roots:
        for candidate in (root, root.resolve()):
            text = str(candidate).rstrip("/")
            # The filesystem root alone would match every absolute path.
            if len(text) > 1:
                texts.add(text)
    return [("service-root-path", "|".join(re.escape(t) for t in sorted(texts)))] if texts else []


def redact(text: str, rules: Sequence[tuple[str, re.Pattern[str]]] | None = None) -> str:
    """Mask every rule-shaped span of ``text`` as ``<redacted:rule>``.

    Args:
        text: A text built from untrusted keys (a JSON path, a scope name).
        rules: The value rules to apply (default: the credential and path rules).

    Returns:
        The text with nothing private left in it.
    """
    for name, pattern in rules if rules is not None else _DEFAULT_RULES:
        text = pattern.sub(f"<redacted:{name}>", text)
    return text


def format_path(segments: Sequence[str | int], redactor: Callable[[str], str] | None = None) -> str:
    """Render JSON path segments as ``a.b[2].c`` (``$`` for the root).

    Each key is redacted on its own (a key may itself be a secret), with
    ``redactor`` or the default rules of :func:`redact`.
    """
    mask = redactor or redact
    out: list[str] = []
    for segment in segments:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        else:
            text = mask(segment)
            out.append(f".{text}" if out else text)
    return "".join(out) or "$"


def secret_key_rule(key: str) -> str | None:
    """The rule a key breaks by naming a secret, or ``None``.

    Case-insensitive; ``-`` reads as ``_`` and camelCase as snake_case, so
    ``API-Key``, ``apiKey`` and ``api_key`` are one name. The one list of such
    names: the privacy gate and the enrichment cache both use it.
    """
    name = _CAMEL.sub("_", key).lower().replace("-", "_")
    if name in _KEY_NAMES:
        return f"secret-key-name:{name}"
    for suffix in _KEY_SUFFIXES:
        if name.endswith(suffix):
            return f"secret-key-name:*{suffix}"
    return None


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret, an auth payload, a raw prompt or command output."""
    return secret_key_rule(key) is not None


class PrivacyGate:
    """Scans JSON trees for private content; one instance per service root.

    Args:
        private_roots: Paths whose text must never appear (the service root).
    """

    def __init__(self, private_roots: Sequence[Path] = ()) -> None:
        self._rules = _value_rules(_root_rules(private_roots))

    def redact(self, text: str) -> str:
        """Mask anything private in ``text``, the service root included."""
        return redact(text, self._rules)

    def value_rule(self, text: str) -> str | None:
        """The name of the first value rule ``text`` breaks, or ``None``."""
        for name, pattern in self._rules:
            if pattern.search(text):
                return name
        return None

    def scan(self, document: Any) -> list[PrivacyHit]:
        """Every hit in ``document``, in document order.

        Args:
            document: A JSON tree (dicts, lists, strings, numbers, bools, ``None``).

        Returns:
            The findings, each with a redacted JSON path and a rule name.
        """
        hits: list[PrivacyHit] = []
        # An explicit stack: documents are client input and may be deep.
        stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, dict):
                children = []
                for key, value in node.items():
                    child = (*path, key)
                    rule = secret_key_rule(key) or self.value_rule(key)
                    if rule is not None:
                        hits.append(PrivacyHit(format_path(child, self.redact), rule))
                    children.append((child, value))
                stack.extend(reversed(children))
            elif isinstance(node, list):
                stack.extend(reversed([((*path, i), v) for i, v in enumerate(node)]))
            elif isinstance(node, str):
                rule = self.value_rule(node)
                if rule is not None:
                    hits.append(PrivacyHit(format_path(path, self.redact), rule))
        return hits

    def check(self, document: Any) -> None:
        """Raise if ``document`` carries anything private.

        Raises:
            PrivacyViolation: Naming the JSON paths and rules, never the values.
        """
        hits = self.scan(document)
        if hits:
            raise PrivacyViolation(describe_hits(hits))


def describe_hits(hits: Sequence[PrivacyHit], limit: int = 10) -> str:
    """A safe, bounded message for a list of findings."""
    shown = ", ".join(f"{h.path} ({h.rule})" for h in hits[:limit])
    more = f" and {len(hits) - limit} more" if len(hits) > limit else ""
    return f"live data rejected by the privacy gate: {shown}{more}"
