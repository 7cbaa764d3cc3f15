"""Redaction: secret values and secret-named fields never survive, whatever carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from bastion.config import Settings
from bastion.trace import REDACTED, Redactor

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
