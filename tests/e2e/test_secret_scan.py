"""Redaction, proved: the whole system runs with a canary in every secret setting, then every
byte it wrote, printed or served is searched for each canary, raw and encoded.

The canaries go into every setting that holds a secret, found from :class:`Settings` itself
(every field typed ``SecretStr``, and every URL-valued field, whose password and secret query
values are secrets by shape), so a secret setting added later fails
:func:`test_every_secret_setting_carries_a_canary` until it is given a canary here.

What runs, as an operator runs it (real processes, loopback only): ``bastion llm fake-server``
whose first answers fail echoing the API key and a URL with a password (providers do:
"Incorrect API key provided: sk-..."); ``bastion run`` of the LLM agent on the embedded paper
exchange, whose first answers also echo the credentials, with its console; while it runs, the
console's page and every ``/api`` route (with the token; and 401, 404, 409 and 422 answers),
``status``, ``kill``, ``resume``, ``budget`` (and ``prune``), ``approvals`` (list, and deciding
an entry the console decided first), ``health``, ``config`` and ``smoke``. Then ``bastion
exchange serve`` (echoing the credentials too) with a run over HTTP and a smoke over its
WebSocket at a URL with a password; and failures: a wrong exchange URL carrying a password and
a secret query value (HTTP and WebSocket, and of a scheme no client speaks), an unreachable
PostgreSQL store whose URL carries a password, an unreachable LLM whose URL carries one, the
secrets read from a bastion.toml instead of the environment, and invalid settings. A route that
raises with secrets in its message is served in-process, for the 500 answer and its log.

What is searched: every file under the data directory, while the run runs and at the end (the
traces, the SQLite store's raw bytes with its WAL, the kill-switch flag, run.json, whatever
else is there), every process's stdout and stderr (the fake LLM server's too), and every HTTP
answer (status line, headers and body). Each canary is looked for raw, percent-encoded
(``quote`` and ``quote_plus``), JSON-escaped, as UTF-16, and in base64 and base64url at each
of the three alignments it can take inside a longer encoded text (HTTP basic auth encodes
``id:secret``).

``bastion replay`` runs over the finished live run (recorded answers), printing JSON and writing
its report into the data directory, so the report is scanned with the rest.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, quote_plus

import httpx
import pytest
from e2e_support import PATIENCE_S, bastion, clean_env, wait_for
from pydantic import SecretStr

from bastion.api.app import create_app
from bastion.api.server import ConsoleServer
from bastion.clock import SimClock
from bastion.config import Settings, load_settings
from bastion.guard.halt import Halt
from bastion.telemetry.logs import configure_logging
from bastion.telemetry.metrics import Metrics

MODEL = "gpt-4o-2024-08-06"
HOLD = json.dumps(
    {"action": "hold", "instrument": None, "amount": None, "limit_price": None, "rationale": "ok"}
)

# One distinctive value per secret; "+" and "/" make every encoding differ from the raw text.
EXCHANGE_SECRET = "Cnry+ExchSecret/4f1a9"
PAPER_SECRET = "Cnry+PaperCred/8c2e7"
LLM_KEY = "sk-Cnry+LlmKey/93b75"
CONSOLE_TOKEN = "Cnry-ConsoleTok_61d0c"
NAMED_TOKEN = "Cnry-NamedTok_alice_4e2a9"
# URL passwords and secret query values: percent-encoding them is the operator's job, so they
# stay URL-safe here (the decoded and encoded forms are searched all the same).
STORE_PASSWORD = "CnryStorePw27e5b"
STORE_URL_PASSWORD = "CnryPgPassword8a1d"
EXCHANGE_URL_PASSWORD = "CnryExchUrlPw3c9e"
EXCHANGE_URL_KEY = "CnryExchUrlKey7b2f"
LLM_URL_PASSWORD = "CnryLlmUrlPw5a3c0"
NEWS_URL_PASSWORD = "CnryNewsUrlPw3c6e"
# A webhook URL's token is its path (Slack's shape); nothing listens at port 9, so every
# delivery fails and its errors, retries and status rows are scanned too.
WEBHOOK_TOKEN = "CnryWebhookTok5d2b8"
SLACK_TOKEN = "CnrySlackHookTok9e4f1"
OPERATOR_SECRET = "Cnry-OperatorHook_2b7d4"
PROMETHEUS_URL_PASSWORD = "CnryPromUrlPw6f1a2"
ALERTMANAGER_URL_PASSWORD = "CnryAmUrlPw0d8c3"

SECRET_SETTINGS: dict[str, tuple[str, ...]] = {
    "exchange_client_secret": (EXCHANGE_SECRET,),
    "paper_allowed_credentials": (EXCHANGE_SECRET, PAPER_SECRET),
    "llm_api_key": (LLM_KEY,),
    "console_token": (CONSOLE_TOKEN,),
    "console_named_tokens": (NAMED_TOKEN,),
    "alert_webhook_urls": (WEBHOOK_TOKEN,),
    "alert_slack_webhook_urls": (SLACK_TOKEN,),
    "operator_webhook_secret": (OPERATOR_SECRET,),
}
"""Every ``SecretStr`` setting and the canaries it carries."""
URL_SETTINGS: dict[str, tuple[str, ...]] = {
    "store_url": (STORE_PASSWORD, STORE_URL_PASSWORD),
    "exchange_url": (EXCHANGE_URL_PASSWORD, EXCHANGE_URL_KEY),
    "llm_base_url": (LLM_URL_PASSWORD,),
    "tools_news_url": (NEWS_URL_PASSWORD,),
    "operator_prometheus_url": (PROMETHEUS_URL_PASSWORD,),
    "operator_alertmanager_url": (ALERTMANAGER_URL_PASSWORD,),
}
"""Every URL-valued setting and the canaries its password or secret query values carry."""
ALERTMANAGER_PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="BastionStepErrorRateHigh"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "bastion-operator",
    "groupLabels": {"alertname": "BastionStepErrorRateHigh"},
    "commonLabels": {"alertname": "BastionStepErrorRateHigh", "severity": "page"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "BastionStepErrorRateHigh", "severity": "page"},
            "annotations": {"summary": "steps failing"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
            "fingerprint": "3f2c9a8b7d6e5f41",
        }
    ],
}
"""One page as Alertmanager delivers it (the operator's intake is scanned with its secret)."""
CANARIES = sorted(
    {c for group in (SECRET_SETTINGS, URL_SETTINGS) for cs in group.values() for c in cs}
)


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


def secret_fields() -> set[str]:
    """The settings typed ``SecretStr`` anywhere in their annotation."""
    return {name for name, info in Settings.model_fields.items() if _holds_secret(info.annotation)}


def url_fields() -> set[str]:
    """The settings that hold a URL (by name, as the settings spell them: ``*_url``)."""
    return {name for name in Settings.model_fields if name.endswith("_url")}


def needles(secret: str) -> dict[str, bytes]:
    """``secret`` in every spelling a leak could take, by the name of the spelling."""
    forms = {
        "raw": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
    }
    found = {name: text.encode() for name, text in forms.items()}
    found["utf-16"] = secret.encode("utf-16-le")
    for shift in range(3):
        # Inside a longer text, base64 of the secret depends on its offset modulo 3: encode it
        # at each offset and keep the characters whose six bits all come from the secret.
        encoded = base64.b64encode(b"\0" * shift + secret.encode())
        bits = 8 * (shift + len(secret))
        kept = encoded[-(-8 * shift // 6) : bits // 6]
        found[f"base64+{shift}"] = kept
        found[f"base64url+{shift}"] = kept.replace(b"+", b"-").replace(b"/", b"_")
    return found


@dataclass
class Evidence:
    """Everything the system wrote, printed or served, by where it came from."""

    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        name, n = where, 1
        while name in self.blobs:
            n += 1
            name = f"{where} #{n}"
        self.blobs[name] = raw

    def process(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        self.add(f"`bastion {what}` stdout", result.stdout)
        self.add(f"`bastion {what}` stderr", result.stderr)

    def response(self, what: str, response: httpx.Response) -> None:
        head = f"HTTP {response.status_code} {response.reason_phrase}\n"
        headers = "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        self.add(f"HTTP {what}", (head + headers + "\n").encode() + response.content)

    def files(self, root: Path, *, when: str = "at the end") -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(f"file {path.relative_to(root.parent)} ({when})", path.read_bytes())

    def leaks(self, secrets: list[str]) -> list[str]:
        """One line per secret and place it was found, with the spelling and its context."""
        found = []
        for secret in secrets:
            spellings = {needle: name for name, needle in reversed(needles(secret).items())}
            for where, blob in self.blobs.items():
                for needle, spelling in spellings.items():
                    at = blob.find(needle)
                    if at >= 0:
                        context = blob[max(0, at - 80) : at + len(needle) + 40]
                        found.append(f"{secret!r} ({spelling}) in {where}: ...{context!r}...")
                        break
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The fake LLM server's first answers fail the way providers fail: echoing the key it was sent
# and the URL it was called at.
LLM_FAULTS = (
    {"kind": "status", "status": 401, "message": f"Incorrect API key provided: {LLM_KEY}"},
    {
        "kind": "status",
        "status": 500,
        "message": f"upstream http://scan:{LLM_URL_PASSWORD}@127.0.0.1/v1?api_key={LLM_KEY} failed",
    },
)


# The paper exchange fails the first requests with the messages a careless venue or proxy
# sends: the credentials it was given, and the URL it was called at.
PAPER_FAULTS = (
    {
        "kind": "error",
        "method": "private/get_account_summary",
        "code": 10028,
        "message": f"too many requests for client_secret={EXCHANGE_SECRET} ({PAPER_SECRET})",
    },
    {
        "kind": "status",
        "method": "public/get_index_price",
        "status": 502,
        "body": f"bad gateway: http://scan:{EXCHANGE_URL_PASSWORD}@upstream/ key {EXCHANGE_SECRET}",
        "content_type": "text/plain",
    },
)


def _env(data_dir: Path, llm_port: int) -> dict[str, str]:
    """The run's settings: a canary in every secret, the LLM agent on the fake server."""
    return clean_env(
        data_dir,
        COLUMNS="400",  # Rich wraps at the terminal's width: a wrapped canary would hide
        BASTION_EXCHANGE_CLIENT_SECRET=EXCHANGE_SECRET,
        BASTION_PAPER_ALLOWED_CREDENTIALS=json.dumps(
            {"bastion-paper": EXCHANGE_SECRET, "desk-two": PAPER_SECRET}
        ),
        BASTION_LLM_API_KEY=LLM_KEY,
        BASTION_CONSOLE_TOKEN=CONSOLE_TOKEN,
        BASTION_CONSOLE_NAMED_TOKENS=json.dumps({"alice": NAMED_TOKEN}),
        BASTION_STORE_URL=f"sqlite:///{data_dir / 'bastion.db'}?password={STORE_PASSWORD}",
        BASTION_LLM_BASE_URL=f"http://scan:{LLM_URL_PASSWORD}@127.0.0.1:{llm_port}/v1",
        BASTION_TOOLS_NEWS_URL=f"http://scan:{NEWS_URL_PASSWORD}@127.0.0.1:9/news",
        BASTION_AGENT="llm_options_seller",
        BASTION_LLM_PROVIDER="openai",
        BASTION_LLM_MODEL=MODEL,
        BASTION_STEP_TIMEOUT_SECONDS="300",
        BASTION_CONSOLE_PORT="0",
        BASTION_LOOP_INTERVAL_SECONDS="0.5",
        BASTION_LOG_LEVEL="DEBUG",
        BASTION_RETRY_BASE_SECONDS="0.05",
        BASTION_PAPER_FAULTS=json.dumps(PAPER_FAULTS),
        BASTION_ALERT_WEBHOOK_URLS=json.dumps([f"http://127.0.0.1:9/hooks/{WEBHOOK_TOKEN}"]),
        BASTION_ALERT_SLACK_WEBHOOK_URLS=json.dumps(
            [f"http://127.0.0.1:9/services/T0/B0/{SLACK_TOKEN}"]
        ),
        BASTION_ALERT_GROUP_WAIT_SECONDS="0",
        BASTION_ALERT_WEBHOOK_TIMEOUT_SECONDS="1",
        BASTION_ALERT_WEBHOOK_DEADLINE_SECONDS="2",
        BASTION_ALERT_FLUSH_SECONDS="1",
        BASTION_OPERATOR_WEBHOOK_SECRET=OPERATOR_SECRET,
        # Nothing listens at port 9: the operator's context query and silence fail, scanned.
        BASTION_OPERATOR_PROMETHEUS_URL=f"http://scan:{PROMETHEUS_URL_PASSWORD}@127.0.0.1:9",
        BASTION_OPERATOR_ALERTMANAGER_URL=f"http://scan:{ALERTMANAGER_URL_PASSWORD}@127.0.0.1:9",
    )


@dataclass
class Console:
    base: str
    evidence: Evidence

    def call(
        self, method: str, path: str, *, token: str | None = CONSOLE_TOKEN, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        response = httpx.request(
            method, f"{self.base}{path}", headers=headers, timeout=PATIENCE_S, **kw
        )
        self.evidence.response(f"{method} {path} (token: {token is not None})", response)
        return response


def _exercise_console(console: Console) -> str:
    """Every route, authorised, and the refusals: 401, 404, 409 and 422. Returns the id of an
    approval it decided (the LLM's 401 asked for a person)."""
    for path in ("/", f"/?token={CONSOLE_TOKEN}", "/healthz", "/metrics", "/static/index.html"):
        assert console.call("GET", path, token=None).status_code == 200, path
    for path in (
        "/api/status",
        "/api/budget",
        "/api/agent_healthcheck",
        "/api/system_health/last",
        "/api/system_health/history",
        "/api/slo",
        "/api/equity",
        "/api/alerts?status=all",
        "/api/operator/status",
    ):
        assert console.call("GET", path).status_code == 200, path
    assert console.call("POST", "/api/agent_healthcheck").status_code == 200
    pending = console.call("GET", "/api/approvals").json()["approvals"]
    assert pending, "the LLM's failure asked for no person"
    decided = pending[0]["id"]
    decision = {"decision": "reject", "note": "secret scan"}
    assert console.call("POST", f"/api/approvals/{decided}", json=decision).status_code == 200
    assert console.call("POST", f"/api/approvals/{decided}", json=decision).status_code == 409
    assert console.call("GET", "/api/approvals?status=all").status_code == 200
    for method, path, token, body, expected in (
        ("GET", "/api/status", None, None, 401),
        ("GET", "/api/status", "wrong-token-1234", None, 401),
        ("GET", f"/api/status?token={CONSOLE_TOKEN}x", None, None, 401),
        ("GET", "/api/nothing-here", CONSOLE_TOKEN, None, 404),
        ("POST", "/api/approvals/no-such-id", CONSOLE_TOKEN, {"decision": "approve"}, 404),
        ("POST", "/api/approvals/x", CONSOLE_TOKEN, {"decision": "maybe"}, 422),
        ("POST", "/api/kill", CONSOLE_TOKEN, {"reason": ""}, 422),
        ("POST", "/api/kill", CONSOLE_TOKEN, {"reason": "scan via console"}, 200),
        ("POST", "/api/resume", CONSOLE_TOKEN, {"reason": "scan done"}, 200),
    ):
        assert console.call(method, path, token=token, json=body).status_code == expected, path
    # Alertmanager's delivery, authorised by the webhook secret alone; the operator analyses it
    # (asking the Prometheus that is not there) and queues its actions.
    delivery = console.call(
        "POST", "/api/alerts/alertmanager", token=OPERATOR_SECRET, json=ALERTMANAGER_PAYLOAD
    )
    assert delivery.status_code == 200, delivery.text
    assert console.call("POST", "/api/alerts/alertmanager", token="wrong-secret").status_code == 401
    malformed = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    assert console.call("POST", "/api/kill", **malformed).status_code == 422
    return str(decided)


def _wrong_exchange(env: dict[str, str], port: int) -> dict[str, str]:
    """An exchange URL with a password and a secret query value, where nothing listens."""
    return {
        **env,
        "BASTION_EXCHANGE_URL": f"http://scan:{EXCHANGE_URL_PASSWORD}@127.0.0.1:{port}"
        f"/?api_key={EXCHANGE_URL_KEY}",
        "BASTION_EXCHANGE_TIMEOUT_SECONDS": "2",
        "BASTION_CALL_DEADLINE_SECONDS": "3",
        "BASTION_HEALTH_CHECK_TIMEOUT_SECONDS": "3",
        "BASTION_RETRY_BASE_SECONDS": "0.01",
        "BASTION_RETRY_CAP_SECONDS": "0.05",
    }


def _dead_store(env: dict[str, str], port: int) -> dict[str, str]:
    """A PostgreSQL store URL with a password, where nothing listens."""
    url = f"postgresql+psycopg://scan:{STORE_URL_PASSWORD}@127.0.0.1:{port}/bastion"
    return {**env, "BASTION_STORE_URL": f"{url}?connect_timeout=2"}


Job = tuple[str, tuple[str, ...], dict[str, str]]
"""What to call a command in the report, its arguments, and its environment."""


def _in_lanes(found: Evidence, lanes: list[list[Job]]) -> None:
    """Each lane's commands in order, the lanes side by side (most of the time is waiting)."""

    def drive(lane: list[Job]) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
        return [(label, bastion(*args, env=env)) for label, args, env in lane]

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        for results in list(pool.map(drive, lanes)):
            for label, result in results:
                found.process(label, result)


def _while_running(env: dict[str, str], decided: str) -> list[list[Job]]:
    """Every command an operator types beside a live run (``decided``: an approval that the
    console decided already, so deciding it again fails)."""

    def job(*args: str) -> Job:
        return " ".join(args), args, env

    return [
        [
            job("smoke", "--steps", "2"),  # first: a halt would stop its dry run
            job("status"),
            job("kill", "--reason", "scan"),
            job("status"),
            job("resume"),
        ],
        [
            job("status", "--json"),
            job("budget"),
            job("approvals", "--all"),
        ],
        [job("health"), job("config")],
        [
            job("budget", "prune", "--dry-run", "--days", "1"),
            job("approvals", "--all", "--json"),
            job("approvals", "approve", decided, "--note", "too late"),
        ],
    ]


def _replays(env: dict[str, str]) -> list[list[Job]]:
    """The replay audit of the live run, once it has ended: JSON out, the report on disk."""
    data = Path(env["BASTION_DATA_DIR"])
    today = datetime.now(UTC).date().isoformat()
    json_args = ("replay", "--date", today, "--json", "--report", str(data / "replay-json.md"))
    text_args = ("replay", "--date", today, "--report", str(data / "replay-report.md"))
    return [[("replay --json", json_args, env), ("replay", text_args, env)]]


def _from_a_file(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A bastion.toml beside the data directory holding the secrets, and an environment that
    leaves them to it."""
    texts = ("exchange_client_secret", "llm_api_key", "console_token", "store_url", "llm_base_url")
    lines = [f"{name} = {json.dumps(env[f'BASTION_{name.upper()}'])}" for name in texts]
    credentials = json.loads(env["BASTION_PAPER_ALLOWED_CREDENTIALS"])
    pairs = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in credentials.items())
    lines.append(f"paper_allowed_credentials = {{ {pairs} }}")
    path = Path(env["BASTION_DATA_DIR"]).parent / "bastion.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    moved = {f"BASTION_{name.upper()}" for name in (*texts, "paper_allowed_credentials")}
    return str(path), {k: v for k, v in env.items() if k not in moved}


def _failures(env: dict[str, str]) -> list[list[Job]]:
    """The failures whose messages quote a URL or an answer: each must still say nothing."""
    closed = _free_port()  # nothing listens there
    wrong = _wrong_exchange(env, closed)
    wrong_ws = {**wrong, "BASTION_EXCHANGE_WEBSOCKET": "true"}
    dead = _dead_store(env, closed)
    bad_url = {**env, "BASTION_LLM_BASE_URL": f"ftp://scan:{LLM_URL_PASSWORD}@127.0.0.1/v1"}
    other_scheme = {**wrong_ws, "BASTION_EXCHANGE_URL": "ftp" + wrong["BASTION_EXCHANGE_URL"][4:]}
    bad_secret = {**env, "BASTION_PAPER_ALLOWED_CREDENTIALS": f"{{{PAPER_SECRET}"}
    llm_down = {
        **env,
        "BASTION_LLM_BASE_URL": f"http://scan:{LLM_URL_PASSWORD}@127.0.0.1:{closed}/v1",
        "BASTION_LLM_TIMEOUT_SECONDS": "2",
        "BASTION_LLM_DEADLINE_SECONDS": "3",
        "BASTION_RETRY_CAP_SECONDS": "0.05",
    }
    toml, from_file = _from_a_file(env)

    def job(why: str, env: dict[str, str], *args: str) -> Job:
        return f"{' '.join(args)} ({why})", args, env

    return [
        [
            job("LLM unreachable", llm_down, "smoke", "--steps", "1", "--for", "8s"),
            job("wrong exchange URL", wrong, "health"),
        ],
        [
            job("wrong exchange URL", wrong, "smoke", "--for", "3s"),
        ],
        [
            job("wrong exchange URL, WebSocket", wrong_ws, "smoke", "--for", "3s"),
            job("wrong exchange URL, WebSocket", wrong_ws, "health", "--json"),
        ],
        [
            job("store unreachable", dead, "status"),
            job("store unreachable", dead, "budget"),
            job("an invalid LLM URL", bad_url, "config"),
            job("secrets in bastion.toml", from_file, "config", "--config", toml),
            job("secrets in bastion.toml", from_file, "status", "--config", toml),
            job("an exchange URL of another scheme", other_scheme, "smoke", "--for", "3s"),
            job("malformed credentials", bad_secret, "config"),
        ],
    ]


def _kills(env: dict[str, str]) -> list[list[Job]]:
    """The kill switch where the exchange or the store cannot be reached: after the other
    failures, which a halt would stop early; the last leaves the flag for the final look."""
    closed = _free_port()
    return [
        [
            ("kill (wrong exchange URL)", ("kill", "--reason", "a"), _wrong_exchange(env, closed)),
            ("resume", ("resume",), env),
            ("kill (store unreachable)", ("kill", "--reason", "b"), _dead_store(env, closed)),
        ]
    ]


def _served(env: dict[str, str], port: int) -> list[list[Job]]:
    """A run over real HTTP against `bastion exchange serve`, and a smoke over its WebSocket
    (whose URL may carry a password: HTTP would send it as basic auth over the client's own)
    and the flattens beside it; then a run at a wrong exchange URL (after the other, as both
    take the run lock)."""
    served = {**env, "BASTION_EXCHANGE_URL": f"http://127.0.0.1:{port}"}
    wrong = _wrong_exchange(env, _free_port())
    with_password = f"http://scan:{EXCHANGE_URL_PASSWORD}@127.0.0.1:{port}"
    socket_env = {
        **served,
        "BASTION_EXCHANGE_URL": with_password,
        "BASTION_EXCHANGE_WEBSOCKET": "true",
    }
    return [
        [
            ("run --steps 2 (served exchange)", ("run", "--steps", "2"), served),
            ("run --steps 1 (wrong exchange URL)", ("run", "--steps", "1"), wrong),
        ],
        [
            ("smoke (served exchange, WebSocket)", ("smoke", "--steps", "1"), socket_env),
            # Neither changes the trading state, which the run beside them would follow.
            ("flatten --dry-run (URL with a password)", ("flatten", "--dry-run"), socket_env),
            (
                "flatten --instrument (served exchange)",
                ("flatten", "--instrument", "BTC-PERPETUAL"),
                served,
            ),
        ],
    ]


@contextlib.contextmanager
def _serving(
    found: Evidence, args: tuple[str, ...], env: dict[str, str], ready: str
) -> Iterator[None]:
    """``bastion ARGS`` serving until the block ends; its output goes to the evidence."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready, process)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        found.add(f"`bastion {' '.join(args[:2])}` stdout", out)
        found.add(f"`bastion {' '.join(args[:2])}` stderr", err)


def _live_run(found: Evidence, env: dict[str, str]) -> None:
    """`bastion run` with its console, driven by everything an operator does beside it."""
    data = Path(env["BASTION_DATA_DIR"])
    run = subprocess.Popen(
        [sys.executable, "-m", "bastion", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: list[str] = []
    try:
        assert run.stdout is not None
        base = ""
        for line in run.stdout:
            printed.append(line)
            match = re.search(r"Console:\s+(http://[\d.:]+)", line)
            if match:
                base = match.group(1)
                break
        assert base, "".join(printed)
        console = Console(base, found)
        deadline = time.monotonic() + PATIENCE_S
        while console.call("GET", "/api/status").json()["last_step"] < 3:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
        decided = _exercise_console(console)
        found.files(data, when="while running")  # the WAL and its index hold recent pages
        _in_lanes(found, _while_running(env, decided))
    finally:
        run.send_signal(signal.SIGINT)
        try:
            rest, errors = run.communicate(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            run.kill()
            rest, errors = run.communicate()
        found.add("`bastion run` stdout", "".join(printed) + rest)
        found.add("`bastion run` stderr", errors)


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """Run everything once: what it wrote, printed and served."""
    data = tmp_path_factory.mktemp("secret-scan") / "data"
    found = Evidence()
    llm, exchange = _free_port(), _free_port()
    env = _env(data, llm)
    faults = [arg for fault in LLM_FAULTS for arg in ("--fault", json.dumps(fault))]
    fake_llm = ("llm", "fake-server", "--port", str(llm), "--default-reply", HOLD, *faults)
    serve = ("exchange", "serve", "--port", str(exchange))
    with _serving(found, fake_llm, env, f"http://127.0.0.1:{llm}/v1/models"):
        _live_run(found, env)
        _in_lanes(found, _replays(env))
        with _serving(found, serve, env, f"http://127.0.0.1:{exchange}/api/v2/public/get_time"):
            _in_lanes(found, [*_served(env, exchange), *_failures(env)])
        _in_lanes(found, _kills(env))
    found.files(data)
    return found


def test_every_secret_setting_carries_a_canary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan covers every secret setting there is, and Bastion knows each canary as one."""
    assert set(SECRET_SETTINGS) == secret_fields(), "a new secret setting: give it a canary"
    assert set(URL_SETTINGS) == url_fields(), "a new URL setting: give it a password canary"
    env = _env(Path("data"), 1)
    known: set[str] = set()
    for name in [k for k in os.environ if k.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    for variant in (env, _wrong_exchange(env, 1), _dead_store(env, 1)):
        for name, value in variant.items():
            if name.startswith("BASTION_"):
                monkeypatch.setenv(name, value)
        known.update(load_settings().secret_values())
    assert set(CANARIES) <= known


def test_the_scan_finds_every_spelling() -> None:
    """The scanner itself: a canary planted raw, encoded or inside basic auth is found."""
    for secret in CANARIES:
        for planted in (
            secret,
            quote(secret, safe=""),
            json.dumps({"k": secret}).replace("/", "\\/"),
            base64.b64encode(f"bastion-paper:{secret}".encode()).decode(),
            base64.b64encode(f"ab:{secret}!".encode()).decode(),
        ):
            found = Evidence()
            found.add("planted", f"before {planted} after")
            assert found.leaks([secret]), planted


def test_no_canary_is_written_printed_or_served(evidence: Evidence) -> None:
    found = evidence
    leaks = found.leaks(CANARIES)
    assert not leaks, "\n".join(leaks)
    names = {where.split(" (")[0] for where in found.blobs if where.startswith("file ")}
    # What the scan must have seen for it to prove anything: the store with its WAL mid-run,
    # the kill-switch flag, the run's holder record, the traces, and the paths that quote
    # secrets: the LLM calls, the LLM's 401, an unreachable LLM, the exchange's echoing error
    # (redacted on the way).
    expected = {"bastion.db", "bastion.db-wal", "kill_switch.flag", "run.json"}
    assert {f"file data/{name}" for name in expected} <= names
    traces = b"".join(b for w, b in found.blobs.items() if w.startswith("file data/traces/"))
    assert b'"kind":"llm_call"' in traces
    assert b'"dependency":"webhook:0"' in traces  # the alert webhooks were tried, and failed
    assert b'"http_status":401' in traces
    assert b"NETWORK (APIConnectionError)" in traces  # the smoke with the LLM unreachable
    assert b'"exchange_url":"http://127.0.0.1:' in traces  # the run on `bastion exchange serve`
    assert b'"exchange_url":"http://scan:***@127.0.0.1:' in traces  # and its WebSocket smoke
    assert b"RATE_LIMIT (10028 too many requests for client_secret=*** ([REDACTED]))" in traces
    flattens = [w for w in found.blobs if w.startswith("file data/traces/") and "/flatten-" in w]
    assert len(flattens) == 2, "both flattens reached the exchange and recorded their plan"
    assert len(found.blobs) > 100


async def test_a_failing_route_answers_500_and_logs_it_redacted(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A route that raises with a secret in its message: the 500 answer and the traceback the
    server logs carry none of it (uvicorn logs through the process's redacting handler)."""

    def failing_status() -> Mapping[str, Any]:
        url = f"http://scan:{STORE_URL_PASSWORD}@db.example/x?api_key={EXCHANGE_URL_KEY}"
        raise RuntimeError(f"status failed at {url} with {LLM_KEY}")

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("WARNING", [LLM_KEY, CONSOLE_TOKEN])
    try:
        halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
        app = create_app(status=failing_status, halt=halt, metrics=Metrics(), token=CONSOLE_TOKEN)
        server = ConsoleServer(app, host="127.0.0.1", port=0)
        server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
                answer = await client.get("/api/status", headers=headers, timeout=PATIENCE_S)
        finally:
            await server.stop()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    assert answer.status_code == 500
    printed = capfd.readouterr()
    assert "status failed at" in printed.err, "the failure was not logged at all"
    found = Evidence()
    found.response("GET /api/status (500)", answer)
    found.add("the console's stdout", printed.out)
    found.add("the console's stderr", printed.err)
    leaks = found.leaks([LLM_KEY, STORE_URL_PASSWORD, EXCHANGE_URL_KEY, CONSOLE_TOKEN])
    assert not leaks, "\n".join(leaks)
