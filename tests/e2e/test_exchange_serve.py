"""`bastion exchange serve`: the paper exchange on loopback for any Deribit client."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

PATIENCE_S = 60.0


def test_serve_answers_deribit_json_rpc_on_loopback(free_port: int) -> None:
    """The served exchange answers public and private calls on the port it was given."""
    port = free_port
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "exchange", "serve", "--port", str(port), "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v2"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                answer = httpx.get(f"{base}/public/get_time").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the exchange never started listening"
                assert proc.poll() is None, "bastion exchange serve exited early"
                time.sleep(0.1)
        assert answer["jsonrpc"] == "2.0"
        assert isinstance(answer["result"], int)
        index = httpx.get(f"{base}/public/get_index_price", params={"index_name": "btc_usd"})
        assert index.json()["result"]["index_price"] > 0
        summary = httpx.get(
            f"{base}/private/get_account_summary",
            params={"currency": "BTC"},
            auth=("any-client", "any-secret"),
        )
        assert summary.json()["result"]["balance"] == 10.0
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=PATIENCE_S)
    assert f"http://127.0.0.1:{port}/api/v2" in output
    assert "Traceback" not in output
