"""How every command group reaches the gateway: its options, the client, and how a failed call ends.

    from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect

    @app.command("list")
    def list_things(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
        with connect(base_url, api_key) as client:
            found = client.get("/api/things")

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY``; an API error prints ``error: <the server's message>`` on stderr
and ends the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from lmdeck.sdk import Client, LMDeckError

BASE_URL = typer.Option(None, "--base-url", help="gateway URL (default: LMDECK_BASE_URL or http://127.0.0.1:4000)")
API_KEY = typer.Option(None, "--api-key", help="API key (default: LMDECK_API_KEY)")
AS_JSON = typer.Option(False, "--json", help="print JSON")


@contextmanager
def connect(
    base_url: str | None, api_key: str | None, *, timeout: float | None = None, exit_code: int = 1
) -> Iterator[Client]:
    """A client for one command (the SDK's timeout unless given); an API error prints its message and exits."""
    try:
        with Client(base_url, api_key) if timeout is None else Client(base_url, api_key, timeout=timeout) as client:
            yield client
    except LMDeckError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code) from None
