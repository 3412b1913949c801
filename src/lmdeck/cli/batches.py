"""``lmdeck batches``: the batches of the caller's team (``/v1/batches``), run by the gateway.

lmdeck batches list
lmdeck batches show batch-0123…
lmdeck batches cancel batch-0123…
"""

from __future__ import annotations

from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when

app = typer.Typer(help="List, show and cancel batches (/v1/batches).", no_args_is_help=True)

HEADER = ("ID", "STATUS", "ENDPOINT", "DONE", "FAILED", "TOTAL", "CREATED", "OUTPUT", "ERRORS")


def _row(batch: dict[str, Any]) -> tuple[str, ...]:
    counts = batch.get("request_counts") or {}
    return (
        batch["id"],
        batch["status"],
        batch["endpoint"],
        str(counts.get("completed", 0)),
        str(counts.get("failed", 0)),
        str(counts.get("total", 0)),
        when(batch["created_at"]),
        batch.get("output_file_id") or "-",
        batch.get("error_file_id") or "-",
    )


@app.command("list")
def list_batches(
    limit: int = typer.Option(20, min=1, max=100, help="how many, newest first"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List the batches of the key's team, newest first."""
    with connect(base_url, api_key) as client:
        batches = client.get("/v1/batches", params={"limit": limit})["data"]
    if as_json:
        print_json(batches)
    else:
        print_table(HEADER, [_row(b) for b in batches])


@app.command("show")
def show(
    batch_id: str = typer.Argument(..., help="the batch's id"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """One batch: its status, counts and files (errors of a failed batch below)."""
    with connect(base_url, api_key) as client:
        batch = client.get(f"/v1/batches/{batch_id}")
    if as_json:
        print_json(batch)
        return
    print_table(HEADER, [_row(batch)])
    for error in (batch.get("errors") or {}).get("data", []):
        typer.echo(f"error: {error['message']}")


@app.command("cancel")
def cancel(
    batch_id: str = typer.Argument(..., help="the batch's id"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Cancel a batch: rows in flight finish, no new ones start."""
    with connect(base_url, api_key) as client:
        batch = client.post(f"/v1/batches/{batch_id}/cancel")
    print_table(HEADER, [_row(batch)])
