"""Redaction: secret values and secret-named fields never survive, whatever carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from bastion.clock import SimClock
from bastion.config import Settings
from bastion.trace import REDACTED, Redactor, TraceWriter
from bastion.trace.redact import URL_MASK, mask_url, url_secrets

SECRET = "s3cr3t-value-42"
TOKEN = "tok_abcdef123456"


@pytest.fixture
def redactor() -> Redactor:
    """A redactor that knows two secrets."""
    return Redactor([SECRET, TOKEN])


def test_secret_values_are_replaced_inside_any_string_at_any_depth(redactor: Redactor) -> None:
    """Every occurrence in strings nested in dicts, lists and tuples becomes [REDACTED]."""
    payload = {
        "message": f"auth failed for {SECRET}; retry with {SECRET}",
        "nested": {"list": ["ok", f"Bearer {TOKEN}", ("tuple", f"x{SECRET}y")]},
        "number": 42,
        "flag": True,
        "nothing": None,
    }
    assert redactor.redact(payload) == {
        "message": f"auth failed for {REDACTED}; retry with {REDACTED}",
        "nested": {"list": ["ok", f"Bearer {REDACTED}", ["tuple", f"x{REDACTED}y"]]},
        "number": 42,
        "flag": True,
        "nothing": None,
    }


def test_a_secret_used_as_a_dict_key_is_redacted_too(redactor: Redactor) -> None:
    """Keys are strings that get written as well; a secret in one does not survive."""
    assert redactor.redact({SECRET: "client"}) == {REDACTED: "client"}


@pytest.mark.parametrize(
    "name",
    [
        "secret",
        "client_secret",
        "password",
        "DB_PASSWORD",
        "token",
        "access_token",
        "console_token",
        "X-Auth-Token",
        "Authorization",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "private_key",
        "passphrase",
    ],
)
@pytest.mark.parametrize("value", ["plain", 12345, {"deep": "dict"}, ["a", "list"], None])
def test_values_under_secret_looking_names_are_replaced_whatever_they_are(
    redactor: Redactor, name: str, value: Any
) -> None:
    """A key that names a secret has its whole value redacted, even a number or a dict."""
    assert redactor.redact({name: value, "kept": "yes"}) == {name: REDACTED, "kept": "yes"}


@pytest.mark.parametrize(
    "name",
    [
        "input_tokens",
        "max_tokens",
        "tokens",
        "token_ttl_seconds",
        "exchange_token_refresh_margin_seconds",
        "kind",
        "instrument",
        "keys",
    ],
)
def test_ordinary_names_are_kept(redactor: Redactor, name: str) -> None:
    """Token counts (LLM usage) and other ordinary names are not mistaken for secrets."""
    assert redactor.redact({name: 7}) == {name: 7}


def test_secretstr_is_redacted_wherever_it_is(redactor: Redactor) -> None:
    """A pydantic SecretStr is redacted under any key, even one that looks harmless."""
    assert redactor.redact({"harmless": SecretStr("anything"), "list": [SecretStr("x")]}) == {
        "harmless": REDACTED,
        "list": [REDACTED],
    }


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    note: str
    tags: list[str] = field(default_factory=list)


class Request(BaseModel):
    url: str
    api_key: SecretStr
    body: dict[str, Any]


class Wrapper(BaseModel):
    request: Request
    attempts: int


class Color(Enum):
    RED = "red"


def test_dataclasses_and_pydantic_models_are_walked(redactor: Redactor) -> None:
    """Fields of dataclasses and models are redacted like dict entries, recursively."""
    creds = Credentials("bastion", SECRET, f"rotated {TOKEN}", [SECRET])
    model = Wrapper(
        request=Request(url=f"https://x/?t={TOKEN}", api_key=SecretStr(SECRET), body={"a": 1}),
        attempts=2,
    )
    assert redactor.redact({"creds": creds, "model": model, "color": Color.RED}) == {
        "creds": {
            "client_id": "bastion",
            "client_secret": REDACTED,
            "note": f"rotated {REDACTED}",
            "tags": [REDACTED],
        },
        "model": {
            "request": {"url": f"https://x/?t={REDACTED}", "api_key": REDACTED, "body": {"a": 1}},
            "attempts": 2,
        },
        "color": "red",
    }


class Opaque:
    def __str__(self) -> str:
        return f"<Opaque holding {SECRET}>"


def test_unknown_objects_become_their_redacted_text(redactor: Redactor) -> None:
    """An object orjson cannot write natively is written as str(), after redaction."""
    assert redactor.redact({"obj": Opaque(), "raw": f"{SECRET}".encode()}) == {
        "obj": f"<Opaque holding {REDACTED}>",
        "raw": REDACTED,
    }


def test_short_secrets_are_ignored() -> None:
    """Secrets under 4 characters would shred ordinary text, so they are not searched for."""
    redactor = Redactor(["abc", "", "abcd"])
    assert redactor.redact_text("abc abcd abcde") == f"abc {REDACTED} {REDACTED}e"


def test_a_secret_containing_another_is_removed_whole() -> None:
    """The longest secret wins, so no fragment of a longer secret is left behind."""
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact_text("x-abcdefgh-x") == f"x-{REDACTED}-x"


def test_the_input_is_not_modified(redactor: Redactor) -> None:
    """Redaction returns a copy; the caller's objects keep their values."""
    payload = {"msg": SECRET, "password": "p", "list": [SECRET]}
    redactor.redact(payload)
    assert payload == {"msg": SECRET, "password": "p", "list": [SECRET]}


def test_settings_secrets_are_redacted_from_text_and_from_the_settings_object() -> None:
    """Settings.secret_values() feeds the redactor: exchange secret and DB password vanish."""
    settings = Settings(
        exchange_client_secret=SecretStr("exchange-secret-1"),
        store_url="postgresql+psycopg://bastion:db-password-2@db/bastion",
    )
    redactor = Redactor(settings.secret_values())
    text = orjson.dumps(redactor.redact(settings)).decode()
    error = redactor.redact_text("connect to postgresql+psycopg://bastion:db-password-2@db failed")
    assert "exchange-secret-1" not in text
    assert "db-password-2" not in text
    assert "db-password-2" not in error


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_json, st.text(max_size=8), st.text(max_size=8))
def test_no_serialised_output_ever_contains_the_secret(value: Any, before: str, after: str) -> None:
    """Property: whatever structure carries it, the secret never reaches the written bytes."""
    redactor = Redactor([SECRET])
    carrier = {"payload": value, "text": f"{before}{SECRET}{after}", "list": [value, SECRET]}
    assert SECRET.encode() not in orjson.dumps(redactor.redact(carrier))


# -- URLs: userinfo passwords and secret-shaped query parameters -------------------------------
QUERY_SECRET = "q-s3cret-7781"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "sslpassword",
        "passwd",
        "pwd",
        "passphrase",
        "token",
        "access_token",
        "X-Amz-Security-Token",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "secret",
        "client_secret",
        "private_key",
        "authorization",
        "auth",
        "sig",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "pass%77ord",
    ],
)
def test_a_secret_shaped_query_parameter_is_masked_and_its_name_kept(key: str) -> None:
    """The value of a query parameter whose name says secret never survives mask_url."""
    url = f"postgresql+psycopg://bastion@db/bastion?sslmode=require&{key}={QUERY_SECRET}&x=1"
    assert mask_url(url) == (
        f"postgresql+psycopg://bastion@db/bastion?sslmode=require&{key}={URL_MASK}&x=1"
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql+psycopg://bastion:pw-1234@db/bastion",
            "postgresql+psycopg://bastion:***@db/bastion",
        ),
        ("redis://:pw-1234@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://u:p%40ss@host/v1", "https://u:***@host/v1"),
        # Unencoded '@', '/', '?' and '#' in a password: SQLAlchemy reads them as the password.
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa/ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa?ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa#ss@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        (
            "postgresql://u:pw-1234@db/x?password=pw-1234&sslmode=require",
            "postgresql://u:***@db/x?password=***&sslmode=require",
        ),
    ],
)
def test_a_userinfo_password_is_masked_and_the_user_name_kept(url: str, masked: str) -> None:
    """user:password@ becomes user:***@, however the password is spelled."""
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "text",
    [
        "postgresql+psycopg://bastion@db/bastion?sslmode=require",
        "sqlite:////srv/a@b/bastion.db",
        "sqlite:///data/bastion.db",
        "https://api.example.com:8443/v1?max_tokens=5&token_type=bearer&tokens=9",
        "postgresql://u@db/x?sslkey=/etc/client.key&sslcert=/etc/client.crt",
        "https://test.deribit.com",
        "http://[::1]:8787/api/status",
        "plain text, accents éà and emoji 🚀 = fine",
        "",
    ],
)
def test_urls_and_text_without_a_secret_are_left_as_they_are(text: str) -> None:
    """Non-secret parameters (sslmode, max_tokens, sslkey's path) stay readable."""
    assert mask_url(text) == text


def test_masking_is_idempotent_and_finds_every_url_in_running_text() -> None:
    """Several URLs in one message are all masked; masking again changes nothing."""
    text = (
        f"tried postgresql://u:pw-1234@db/x?password={QUERY_SECRET} then "
        f"'https://h/v1?api_key={QUERY_SECRET}' and conninfo password={QUERY_SECRET}"
    )
    masked = mask_url(text)
    assert QUERY_SECRET not in masked
    assert "pw-1234" not in masked
    assert masked == (
        "tried postgresql://u:***@db/x?password=*** then "
        "'https://h/v1?api_key=***' and conninfo password=***"
    )
    assert mask_url(masked) == masked


def test_url_secrets_are_the_values_in_every_spelling() -> None:
    """The raw and decoded forms are listed, since a driver's error may echo either."""
    url = "postgresql://u:p%40ss-word@db/x?sslpassword=a%2Bb+c-9&sslmode=require&token="
    assert set(url_secrets(url)) == {"p%40ss-word", "p@ss-word", "a%2Bb+c-9", "a+b+c-9", "a+b c-9"}
    assert url_secrets("sqlite:///data/bastion.db?mode=ro") == []


def test_the_redactor_masks_a_url_secret_nobody_told_it_about() -> None:
    """A URL with a secret query inside any traced string is masked, known secrets or not."""
    payload = {
        "error": f"cannot connect to postgresql://bastion@db/x?password={QUERY_SECRET}",
        "nested": [f"GET /v1/models?api_key={QUERY_SECRET} 401"],
    }
    text = orjson.dumps(Redactor(()).redact(payload)).decode()
    assert QUERY_SECRET not in text
    assert "password=***" in text


def test_settings_query_secrets_are_known_secrets_of_the_redactor() -> None:
    """Settings.secret_values() lists query secrets, so they vanish even outside a URL."""
    settings = Settings(
        store_url=f"postgresql+psycopg://bastion@db/bastion?password={QUERY_SECRET}",
        exchange_url="https://exchange.example/?token=exchange-query-token",
    )
    redactor = Redactor(settings.secret_values())
    said = redactor.redact_text(f"FATAL: password {QUERY_SECRET} rejected; exchange-query-token")
    assert QUERY_SECRET not in said
    assert "exchange-query-token" not in said


@given(st.text(min_size=1, max_size=16), st.sampled_from(["password", "sslpassword", "token"]))
def test_no_encoded_secret_survives_in_a_url(value: str, key: str) -> None:
    """Property: a percent-encoded secret, in userinfo or in a secret query key, is masked."""
    encoded = "Zq" + quote(value, safe="")
    url = f"postgresql://bastion:{encoded}@db/x?sslmode=require&{key}={encoded}"
    masked = mask_url(url)
    assert encoded not in masked
    assert masked.endswith("?sslmode=require&" + key + "=***")


def test_a_run_started_line_with_the_settings_carries_no_url_secret(tmp_path: Path) -> None:
    """Query and userinfo passwords of configured URLs never reach the trace file, in any form."""
    settings = Settings(
        store_url="postgresql+psycopg://bastion:userinfo-pw-1@db/bastion?password=query-pw-2"
        "&sslmode=require",
        llm_base_url="http://127.0.0.1:8765/v1?api_key=llm-query-key-3",
    )
    clock = SimClock(start=1_767_225_600)
    with TraceWriter(tmp_path / "traces", "run-1", clock, settings.secret_values()) as writer:
        writer.write("run_started", {"settings": settings.public_dict()})
        writer.write("error", {"message": "login failed: password query-pw-2 refused"})
    written = writer.path.read_text()
    for secret in ("userinfo-pw-1", "query-pw-2", "llm-query-key-3"):
        assert secret not in written
    assert "sslmode=require" in written
