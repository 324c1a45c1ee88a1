from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.enrich.safety import _UNSAFE, bounded, is_safe, safe_summary

PRIVATE = ("/srv/actorbus-root",)


@pytest.mark.parametrize(
    "text",
    [
        "key AKIAABCDEFGHIJKLMNOP",
        "ghp_" + "a" * 36,
        "xoxb-1234567890-abc",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig",
        "-----BEGIN RSA PRIVATE KEY-----",
        "Authorization: Bearer abcdefghijklmnop",
        "sk-proj-" + "b" * 24,
        "sk_live_abcdefghijkl",
        "AIza" + "c" * 35,
        "read /home/alice/notes",
        "under /root/.ssh",
        "in ~/secrets",
        "C:\\Users\\bob\\x",
        "at /srv/actorbus-root/cache/enrichment/ab.json",
    ],
)
def test_credentials_and_private_paths_are_unsafe(text: str) -> None:
    assert not is_safe(text, PRIVATE)
    assert safe_summary(text, 4096, PRIVATE) is None


@pytest.mark.parametrize(
    "text",
    [
        "https://example.org/a?b=c",
        "2026-11-22T09:15:02.137Z",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567",
        "assets/img/logo.png",
        "rotate your tokens and passwords often",
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_benign_text_is_safe(text: str) -> None:
    assert is_safe(text, PRIVATE)
    assert safe_summary(text, 4096, PRIVATE) == text


def test_bounded_cuts_at_a_character_boundary_and_marks_the_cut() -> None:
    text = "é" * 100
    cut = bounded(text, 51)
    assert len(cut.encode()) <= 51 and cut.endswith("…")
    assert bounded("short", 10) == "short"


def test_non_strings_and_broken_text_are_not_summaries() -> None:
    assert safe_summary(5, 100, PRIVATE) is None
    assert safe_summary(None, 100, PRIVATE) is None
    assert safe_summary("bad \ud800 surrogate", 100, PRIVATE) is None


FRAGMENTS = [
    "AKIAABCDEFGHIJKLMNOP", "ghp_" + "a" * 36, "xoxb-1234567890-abc", "Bearer abcdefghijklmnop",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig", "sk-" + "b" * 24, "AIza" + "c" * 35,
    "/home/al/", "~/", "C:\\Users\\bob\\", "plain", " ", "words", "gh", "sk", "eyJ", "BEGIN",
    "/home", "Users", "-----BEGIN EC PRIVATE KEY-----", "rk_live_abcdefghijk",
]  # fmt: skip


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=6))
def test_the_marker_prefilter_never_hides_a_match(parts: list[str]) -> None:
    text = "".join(parts)
    assert is_safe(text, ()) is (_UNSAFE.search(text) is None)
