"""``lmdeck files``: batch input files of the caller's team (``/v1/files``).

lmdeck files upload rows.jsonl
lmdeck files list
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when

app = typer.Typer(help="Upload and list batch files (/v1/files).", no_args_is_help=True)

HEADER = ("ID", "FILENAME", "PURPOSE", "BYTES", "CREATED")


def _row(file: dict[str, Any]) -> tuple[str, ...]:
    return (file["id"], file["filename"], file["purpose"], str(file["bytes"]), when(file["created_at"]))


@app.command("upload")
def upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="a JSON Lines file of batch requests"),
    purpose: str = typer.Option("batch", help="the file's purpose (lmdeck keeps `batch` files)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Upload a batch input file; prints its id. A bad line is reported with its number."""
    with connect(base_url, api_key, timeout=300.0) as client:
        created = client.request(
            "POST", "/v1/files", files={"file": (path.name, path.read_bytes())}, data={"purpose": purpose}
        )
    if as_json:
        print_json(created)
    else:
        print_table(HEADER, [_row(created)])


@app.command("list")
def list_files(
    purpose: str | None = typer.Option(None, help="only files of this purpose (`batch`, `batch_output`)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List the files of the key's team, newest first."""
    with connect(base_url, api_key) as client:
        files = client.get("/v1/files", params={"purpose": purpose})["data"]
    if as_json:
        print_json(files)
    else:
        print_table(HEADER, [_row(f) for f in files])
