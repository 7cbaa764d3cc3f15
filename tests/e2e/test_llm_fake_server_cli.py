"""`bastion llm fake-server` as a process: it serves chat completions, and refuses bad input."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx


def _bastion(*args: str) -> list[str]:
    return [sys.executable, "-m", "bastion", *args]


def test_serves_scripted_replies_on_loopback(free_port: int) -> None:
    process = subprocess.Popen(
        _bastion("llm", "fake-server", "--port", str(free_port), "--reply", "first"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{free_port}/v1/chat/completions"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.post(url, json=body, timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the fake server did not start"
                time.sleep(0.1)
        second = httpx.post(url, json=body, timeout=2)
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes the pipe
    assert first.json()["choices"][0]["message"]["content"] == "first"
    assert second.json()["choices"][0]["message"]["content"] == "OK"  # the default reply
    assert first.json()["usage"]["prompt_tokens"] >= 1


def test_a_bad_fault_or_a_public_host_fails_with_exit_2() -> None:
    bad = subprocess.run(
        _bastion("llm", "fake-server", "--fault", '{"kind": "explode"}'),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--fault: kind" in bad.stderr
    public = subprocess.run(
        _bastion("llm", "fake-server", "--host", "0.0.0.0", "--port", "0"),  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert public.returncode == 2
    assert "not a loopback address" in public.stderr
