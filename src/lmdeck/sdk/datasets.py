"""``client.datasets``: versioned datasets, by content hash.

version = client.datasets.upload("tickets", "tickets.jsonl")          # JSONL: input, expected, metadata
version = client.datasets.from_traces("tickets", "route=support status=ok since=7d")
for row in client.datasets.rows("tickets", version["version"]):
    print(row["input"], row["expected"], row.get("trace_id"))
card = client.datasets.card("tickets", 2)    # what a fine-tuning job's preparation made of version 2
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Namespace


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows from a JSONL file; a line that is not a JSON object is an error naming its number."""
    rows: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LMDeckError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise LMDeckError(f"{path}:{number}: each line must be an object with `input`")
            rows.append(row)
    return rows


class Datasets(Namespace):
    """Datasets (``/api/registry/datasets``)."""

    name = "datasets"

    def _path(self, name: str, tail: str = "") -> str:
        return f"/api/registry/datasets/{quote(name, safe='')}{tail}"

    def get(self, name: str) -> dict[str, Any]:
        shown: dict[str, Any] = self.client.get(self._path(name))
        return shown

    def version(self, name: str, ref: int | str) -> dict[str, Any]:
        """A version by number or by content hash (8+ leading hex digits)."""
        found: dict[str, Any] = self.client.get(self._path(name, f"/versions/{quote(str(ref), safe='')}"))
        return found

    def create(self, name: str, rows: Iterable[dict[str, Any]], *, description: str | None = None) -> dict[str, Any]:
        """The version holding ``rows`` (``created`` is false when identical rows were already a version)."""
        created: dict[str, Any] = self.client.post(
            self._path(name, "/versions"), json={"rows": list(rows), "description": description}
        )
        return created

    def upload(self, name: str, path: str | Path, *, description: str | None = None) -> dict[str, Any]:
        rows = read_jsonl(path)
        return self.create(name, rows, description=description or f"from {Path(path).name}")

    def from_traces(
        self,
        name: str,
        filter: str,
        *,
        limit: int = 1000,
        description: str | None = None,
        team: str | None = None,
        visibility: str | None = None,
        corrections: str = "none",
        keep_uncorrected: bool = True,
    ) -> dict[str, Any]:
        """A version from the caller's team's traces matching ``filter`` (an admin names ``team``);
        ``visibility="shared"`` lets every team read a new dataset; ``corrections`` (``feedback`` or
        ``annotations``) takes each row's expected output from the correction a person gave, dropping
        the rows nobody corrected unless ``keep_uncorrected``."""
        body: dict[str, Any] = {
            "filter": filter,
            "limit": limit,
            "description": description,
            "corrections": corrections,
            "keep_uncorrected": keep_uncorrected,
        }
        body.update({k: v for k, v in (("team", team), ("visibility", visibility)) if v is not None})
        created: dict[str, Any] = self.client.post(self._path(name, "/from-traces"), json=body)
        return created

    def card(self, name: str, ref: int | str) -> dict[str, Any]:
        """The data card a fine-tuning preparation kept with a version (counts, token lengths, sources,
        the traces it came from); a 404 ``LMDeckError`` when none was prepared."""
        card: dict[str, Any] = self.client.get(self._path(name, f"/versions/{quote(str(ref), safe='')}/card"))
        return card

    def rows(self, name: str, ref: int | str, *, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every row of a version, in order, fetched page by page."""
        offset = 0
        while True:
            page = self.client.get(
                self._path(name, f"/versions/{quote(str(ref), safe='')}/rows"),
                params={"offset": offset, "limit": page_size},
            )
            yield from page["data"]
            if not page["has_more"]:
                return
            offset += len(page["data"])

    # Last in the class: below it, `list` would name this method.
    def list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/registry/datasets")["data"]
        return data


NAMESPACE = Datasets
