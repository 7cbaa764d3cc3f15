"""One JSON-RPC decoder for both transports: its checks, and no import cycle behind it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from bastion.simulators import paper
from bastion.simulators.paper import rpc
from bastion.simulators.paper.envelope import NO_ID
from bastion.simulators.paper.errors import RpcError

PAPER = Path(paper.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", ["ws", "rpc", "feed", "subscriptions", "channels", "methods"])
def test_transports_do_not_import_the_app(module: str) -> None:
    """The WebSocket face and the shared layers never import app.py: the cycle is gone."""
    assert "bastion.simulators.paper.app" not in imported_modules(PAPER / f"{module}.py")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not json", -32700),
        (b"[1, 2]", -32600),
        (b'"text"', -32600),
        (b'{"id": 1, "params": {"label": "' + b"x" * 33_000 + b'"}}', -32600),
    ],
)
def test_decode_refuses_what_is_not_one_object(payload: bytes, code: int) -> None:
    """Bad JSON, batches, scalars and oversized payloads are refused with their codes."""
    with pytest.raises(RpcError) as caught:
        rpc.decode(payload, what="frame")
    assert caught.value.code == code
    with pytest.raises(RpcError) as again:
        rpc.decode(payload.decode(), what="frame")
    assert again.value.code == code


@pytest.mark.parametrize(
    ("message", "require_id", "method", "code"),
    [
        ({"method": "public/test"}, True, None, -32600),
        ({"id": 1, "method": 5}, False, None, -32600),
        ({"id": 1}, False, None, -32600),
        ({"id": 1, "method": "public/nope", "params": [1]}, False, None, -32601),
        ({"id": 1, "method": "public/ticker", "params": [1]}, False, None, -32602),
        ({"id": 1, "method": "public/test"}, False, "public/get_time", -32600),
        ({"id": 1}, False, "private/get_time", -32601),
    ],
)
def test_read_checks_id_method_and_params(
    message: dict[str, Any], require_id: bool, method: str | None, code: int
) -> None:
    """Missing id (where required), bad or unknown method, positional params: one code each."""
    with pytest.raises(RpcError) as caught:
        rpc.read(message, require_id=require_id, method=method)
    assert caught.value.code == code


def test_read_keeps_id_method_and_params() -> None:
    """A good message becomes a request; an absent id stays NO_ID (the answer carries none)."""
    request = rpc.read(
        {"method": "public/ticker", "params": {"instrument_name": "X"}}, require_id=False
    )
    assert (request.rpc_id, request.method, request.params.text("instrument_name")) == (
        NO_ID,
        "public/ticker",
        "X",
    )
