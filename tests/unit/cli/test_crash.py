"""A bug's traceback is printed, with the secrets its messages quote redacted."""

from __future__ import annotations

import importlib

import pytest

# The module, not the Typer app its package exports under the same name.
cli_app = importlib.import_module("bastion.cli.app")


def _crash() -> None:
    url = "http://bot:url-pass-123@exchange.example/?api_key=url-key-456"
    raise RuntimeError(f"unexpected at {url} with the key sk-known-789")


@pytest.mark.parametrize("settings_load", [True, False])
def test_a_crash_prints_its_traceback_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings_load: bool
) -> None:
    for name in ("BASTION_LLM_API_KEY", "BASTION_PAPER_SEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BASTION_LLM_API_KEY", "sk-known-789")
    if not settings_load:
        monkeypatch.setenv("BASTION_PAPER_SEED", "not-a-number")
    monkeypatch.setattr(cli_app, "app", _crash)
    with pytest.raises(SystemExit) as exited:
        cli_app.main()
    assert exited.value.code == 1
    printed = capsys.readouterr().err
    assert "Traceback (most recent call last)" in printed
    assert "RuntimeError: unexpected at http://bot:***@exchange.example/?api_key=***" in printed
    assert "url-pass-123" not in printed
    assert "url-key-456" not in printed
    assert ("sk-known-789" in printed) is not settings_load
