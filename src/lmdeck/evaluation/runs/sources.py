"""A run's dataset rows and prompt versions, read from the registry."""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.evaluation.runs.runner import DatasetRef, Row
from lmdeck.protocol import APIError
from lmdeck.registry.datasets import DatasetStore
from lmdeck.registry.snapshot import RegistrySnapshot

_PAGE = 500


class RegistrySources:
    """Datasets from the registry's tables, prompt versions from its live snapshot (blocking calls)."""

    def __init__(self, datasets: DatasetStore, snapshot: Callable[[], RegistrySnapshot]) -> None:
        self.datasets = datasets
        self.snapshot = snapshot

    def dataset(self, name: str, version: str | None) -> DatasetRef:
        found = self.datasets.version(name, version) if version else self.datasets.versions(name)[-1]
        return DatasetRef(found.name, found.version, found.digest, found.row_count)

    def rows(self, ref: DatasetRef) -> list[Row]:
        rows: list[Row] = []
        while len(rows) < ref.row_count:
            page = self.datasets.rows(ref.name, ref.version, offset=len(rows), limit=_PAGE)
            if not page:
                break
            rows.extend(Row(r.input, r.expected, r.metadata) for r in page)
        return rows

    def prompt_version(self, name: str, pointer: str | None) -> int:
        snap = self.snapshot()
        if pointer is not None and pointer.isdigit():
            compiled = snap.prompt(name, version=int(pointer))
        else:
            compiled = snap.prompt(name, label=pointer)
        if compiled is None:
            raise APIError(404, f"no prompt {name}@{pointer}", code="prompt_not_found")
        return compiled.version.version
