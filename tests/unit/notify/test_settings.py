"""The webhook settings: secrets that stay secret, and errors that name the field, not the URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.config import load_settings
from bastion.errors import ConfigError

TOKEN = "T0KEN-in-the-path-XYZ123"
URL = f"https://hooks.example.com/services/T000/B000/{TOKEN}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_webhook_urls_are_secrets_everywhere_settings_are_shown() -> None:
    """public_dict (what runs record and `bastion config` prints) masks them; secret_values
    (what every redactor is given) holds each whole URL."""
    s = load_settings(alert_webhook_urls=[URL], alert_slack_webhook_urls=[URL + "-slack"])
    public = s.public_dict()
    assert public["alert_webhook_urls"] == "[REDACTED]"
    assert public["alert_slack_webhook_urls"] == "[REDACTED]"
    assert TOKEN not in repr(s)
    assert TOKEN not in str(public)
    assert {URL, URL + "-slack", TOKEN, TOKEN + "-slack"} <= set(s.secret_values())
    bare = load_settings(alert_webhook_urls=["https://a-long-host-name.example.com"])
    assert "a-long-host-name.example.com" not in bare.secret_values()  # no path: no token


def test_a_url_that_is_not_http_names_the_entry_and_hides_its_value() -> None:
    """ftp:// in the second entry: the error says alert_webhook_urls[1], never the URL."""
    with pytest.raises(ConfigError) as caught:
        load_settings(alert_webhook_urls=[URL, f"ftp://files.example.com/{TOKEN}"])
    message = str(caught.value)
    assert "alert_webhook_urls[1] is not an http(s) URL" in message
    assert "BASTION_ALERT_WEBHOOK_URLS" in message
    assert TOKEN not in message


def test_a_value_that_is_not_a_json_list_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bare URL where a JSON list belongs: the field is named, the URL is not echoed."""
    monkeypatch.setenv("BASTION_ALERT_SLACK_WEBHOOK_URLS", URL)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "alert_slack_webhook_urls" in message
    assert TOKEN not in message


def test_a_deadline_below_the_timeout_is_refused() -> None:
    """The deadline bounds the retries of one delivery: it cannot be shorter than one try."""
    with pytest.raises(ConfigError, match="alert_webhook_deadline_seconds"):
        load_settings(alert_webhook_timeout_seconds=10, alert_webhook_deadline_seconds=5)
