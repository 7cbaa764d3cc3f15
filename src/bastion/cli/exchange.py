"""``bastion exchange serve``: the paper exchange over HTTP and WebSocket (Deribit API v2)."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli.context import ConfigOption, load, out
from bastion.clock import WallClock

__all__ = ["exchange_app"]

exchange_app = typer.Typer(help="The Deribit-compatible paper exchange.", no_args_is_help=True)


@exchange_app.command("serve")
def exchange_serve(
    port: Annotated[int, typer.Option("--port", help="Port on loopback.")] = 8788,
    seed: Annotated[int, typer.Option("--seed", help="Market seed.")] = 1,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    config: ConfigOption = None,
) -> None:
    """Serve the paper exchange over HTTP (Deribit API v2 at /api/v2)."""
    import uvicorn  # noqa: PLC0415  lazy: see cli/app.py

    from bastion.build import build_paper_app  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config)
    paper = build_paper_app(settings.model_copy(update={"paper_seed": seed}), WallClock())
    out.print(f"Paper exchange (seed {seed}) on http://{host}:{port}/api/v2 — Ctrl-C to stop.")
    uvicorn.run(paper, host=host, port=port, log_level="warning")
