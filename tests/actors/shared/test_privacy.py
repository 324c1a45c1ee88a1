"""The privacy gate: a corpus of secret shapes and benign values, and a leak property."""

from __future__ import annotations

import logging
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import LIVE_DATA_LOCK, FileLiveStore, NamedLock, PrivacyGate
from actors.live.engine import LiveEngine  # layering: white-box, the gate in the write path
from actors.live.scopes import build_scopes  # layering: white-box, the engine's scopes
from actors.live.validate import ContractValidator  # layering: white-box, its validator
from contracts import OwnershipViolation, PrivacyViolation

A36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "key=AKIAJ2K3L4M5N6O7P8Q9 in config",
    f"ghp_{A36}",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    f"ghs_{A36}",
    f"ghu_{A36}",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "xoxp-123456789012-123456789012-123456789012-abcdef0123456789",
    "slack: xoxa-2-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n",
    "-----BEGIN EC PRIVATE KEY-----",
    "Bearer eyJhbGciOiJIUzI1NiJ9abcdef",
    "Authorization: Bearer 0123456789abcdefABCDEF",
    "Basic dXNlcjpwYXNzd29yZA==",
    "basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "sk-" + "T3BlbkFJ" * 6,
    "sk-proj-" + A36 + "xyz",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_live_51H8dsf8sdf7sd8f7sd8f7sd8",
    "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "https://user:hunter2@example.com/repo.git",
    "postgres://admin:s3cr3t@db.internal:5432/app",
    "/home/alice/.ssh/id_rsa",
    "log at /home/dave/work/out.log failed",
    "see file:///home/erin/notes",
    "/root/.bashrc",
    "/Users/bob/Documents/report.pdf",
    "C:\\Users\\carol\\AppData\\notes.txt",
    "~/secrets.txt",
    "copied to ~deploy/keys",
]

BENIGN = [
    "https://example.com/dashboard",
    "https://github.com/org/repo/commit/da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "https://cdn.example.com/home/users/index.html",
    "https://example.com/~alice/page",
    "mailto:team@example.com",
    "user@example.com",
    "2026-11-22T09:15:02.137Z",
    "2026-11-22",
    "123e4567-e89b-12d3-a456-426614174000",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "assets/img/logo.png",
    "./static/app.js",
    "../shared/style.css",
    "images/home/banner.png",
    "relative/path/to/file.txt",
    "/var/lib/app/data",
    "/tmp/build",
    "C:\\Program Files\\App",
    "Rotate your tokens every 90 days.",
    "The password field must not be empty.",
    "Bearer authentication is described in RFC 6750.",
    "The authorization header carries a bearer token.",
    "Basic settings",
    "Basic plan",
    "Use a secret manager for credentials.",
    "tokens per minute: 1200",
    "stdout and stderr are captured separately",
    "sk-learn",
    "task-1234",
    "AKIA is the prefix of AWS access key ids",
    "ghp_ tokens are classic GitHub tokens",
    "eyJ starts a JWT",
    "ok",
    "",
    "v1.2.3",
    "Hello, world!",
]

SECRET_KEYS = [
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
    "Set-Cookie",
    "private_key",
    "prompt",
    "raw_prompt",
    "system_prompt",
    "stdout",
    "stderr",
    "command_output",
    "source_dump",
    "raw_source",
    "db_password",
    "aws_secret",
    "github_token",
    "openai_api_key",
    "API-KEY",
    "accessToken",
    "clientSecret",
]

BENIGN_KEYS = [
    "tokens_per_minute",
    "cache_key",
    "token_count",
    "max_tokens",
    "prompt_tokens",
    "author",
    "authored_at",
    "auth_method",
    "passwordless",
    "secretary",
    "key",
    "updated_at",
    "status",
    "url",
    "commit",
]


@pytest.fixture
def gate(tmp_path: Path) -> PrivacyGate:
    return PrivacyGate([tmp_path])


def test_the_corpora_are_large_enough() -> None:
    assert len(SECRETS) >= 30
    assert len(BENIGN) >= 30


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_values_are_rejected_without_echoing_them(gate: PrivacyGate, secret: str) -> None:
    with pytest.raises(PrivacyViolation) as info:
        gate.check({"host": {"notes": [1, {"text": secret}]}})
    assert "host.notes[1].text" in info.value.message
    assert secret not in info.value.message


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_shapes_used_as_keys_are_rejected_and_redacted(
    gate: PrivacyGate, secret: str
) -> None:
    with pytest.raises(PrivacyViolation) as info:
        gate.check({"host": {secret: 1}})
    assert secret not in info.value.message
    assert "<redacted:" in info.value.message


@pytest.mark.parametrize("value", BENIGN)
def test_benign_values_pass(gate: PrivacyGate, value: str) -> None:
    assert gate.scan({"host": {"value": value, "list": [value]}}) == []


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_keys_naming_secrets_are_rejected_with_their_rule(gate: PrivacyGate, key: str) -> None:
    hits = gate.scan({"host": {key: "harmless"}})
    assert [h.path for h in hits] == [f"host.{key}"]
    assert hits[0].rule.startswith("secret-key-name:")


@pytest.mark.parametrize("key", BENIGN_KEYS)
def test_benign_keys_pass(gate: PrivacyGate, key: str) -> None:
    assert gate.scan({key: {key: 1}}) == []


def test_the_service_root_itself_is_private(tmp_path: Path, gate: PrivacyGate) -> None:
    hits = gate.scan({"a": f"written to {tmp_path}/data/out.json", "b": "assets/x.png"})
    assert [(h.path, h.rule) for h in hits] == [("a", "service-root-path")]


def test_every_hit_is_reported_in_document_order(gate: PrivacyGate) -> None:
    doc = {"a": {"password": "x"}, "b": ["ok", "/root/x"], "c": "AKIAIOSFODNN7EXAMPLE"}
    assert [(h.path, h.rule) for h in gate.scan(doc)] == [
        ("a.password", "secret-key-name:password"),
        ("b[1]", "root-home-path"),
        ("c", "aws-access-key-id"),
    ]


def test_numbers_booleans_and_nulls_are_not_scanned(gate: PrivacyGate) -> None:
    assert gate.scan({"a": [1, 2.5, True, None], "b": {"c": 0}}) == []


def test_a_long_list_of_hits_is_bounded_in_the_message(gate: PrivacyGate) -> None:
    with pytest.raises(PrivacyViolation) as info:
        gate.check({"a": ["/root/x"] * 25})
    assert "and 15 more" in info.value.message


# ---- the leak property, through the real write pipeline ---------------------

_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits


def _tail(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n + 12)


SECRET_SHAPES = st.one_of(
    _tail(_UPPER, 16).map(lambda s: "AKIA" + s[:16]),
    st.tuples(st.sampled_from(["ghp", "gho", "ghs", "ghu"]), _tail(_ALNUM, 36)).map("_".join),
    _tail(_ALNUM + "_", 40).map(lambda s: "github_pat_" + s),
    st.tuples(st.sampled_from("abprs"), _tail(_ALNUM, 20)).map(lambda t: f"xox{t[0]}-{t[1]}"),
    st.tuples(_tail(_ALNUM, 12), _tail(_ALNUM, 20), _tail(_ALNUM, 10)).map(
        lambda t: f"eyJ{t[0]}.eyJ{t[1]}.{t[2]}"
    ),
    _tail(_ALNUM, 30).map(lambda s: f"Bearer 9{s}"),
    _tail(_ALNUM, 40).map(lambda s: f"sk-proj-{s}"),
    _tail(_ALNUM, 24).map(lambda s: f"sk_live_{s}"),
    _tail(_ALNUM, 35).map(lambda s: "AIza" + s[:35]),
    _tail(string.ascii_lowercase, 3).map(lambda s: f"/home/{s}/.config/app.toml"),
    _tail(string.ascii_lowercase, 3).map(lambda s: f"~/{s}.txt"),
    _tail(string.ascii_lowercase, 3).map(lambda s: f"https://{s}:pw{s}@example.com/"),
)
PROSE = st.text(string.ascii_letters + " ,.", max_size=20)
SECRETS_IN_PROSE = st.tuples(PROSE, SECRET_SHAPES, PROSE).map(
    lambda t: f"{t[0]} {t[1]} {t[2]}".strip()
)


EXAMPLE = b'{"schema_version": 1, "extensions": {"items": {}}}'


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    secret=SECRETS_IN_PROSE,
    placement=st.sampled_from(["value", "key", "nested", "outside"]),
)
def test_no_rejected_value_reaches_an_error_or_a_log_line(
    tmp_path: Path, secret: str, placement: str
) -> None:
    root = tmp_path
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "live-data.example.json").write_bytes(EXAMPLE)
    engine = LiveEngine(
        store=FileLiveStore(root / "data"),
        lock=NamedLock(root / "locks", LIVE_DATA_LOCK, stale_s=600),
        scopes=build_scopes({}),
        validator=ContractValidator(),
        gate=PrivacyGate([root]),
        lock_wait_s=1.0,
    )
    item: dict[str, object] = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}
    if placement == "value":
        item["note"] = secret
    elif placement == "key":
        item[secret] = "x"
    else:
        item["history"] = [{"at": 1}, {"detail": {"text": secret}}]
    data: dict[str, object] = {"extensions": {"items": {"trend-finder": item}}}
    if placement == "outside":
        data = {"extensions": {"items": {"trend-finder": item, secret: {}}}}
    capture = _Capture()
    logger = logging.getLogger("actorbus")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises((PrivacyViolation, OwnershipViolation)) as info:
            engine.write("trend-finder", data, False)
    finally:
        logger.removeHandler(capture)
    assert capture.lines, "the rejection is logged"
    for text in [info.value.message, str(info.value), *capture.lines]:
        assert secret not in text
    assert not (root / "data" / "live-data.json").exists()
    assert not (root / "locks" / f"{LIVE_DATA_LOCK}.lock").exists()
