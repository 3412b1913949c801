"""A run's dataset rows and prompt versions, read from the registry."""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.evaluation.runs.runner import DatasetRef, Row
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import check_read
from lmdeck.protocol import APIError
from lmdeck.protocol.limits import is_ascii_int, parse_int
from lmdeck.registry.datasets import DatasetStore, dataset_not_found
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot, missing_prompt

_PAGE = 500


class RegistrySources:
    """Datasets from the registry's tables, prompt versions from its live snapshot (blocking calls);
    what the run's caller may not read is a 404."""

    def __init__(self, datasets: DatasetStore, snapshot: Callable[[], RegistrySnapshot]) -> None:
        self.datasets = datasets
        self.snapshot = snapshot

    def dataset(self, name: str, version: str | None, principal: Principal) -> DatasetRef:
        check_read(principal, self.datasets.owner(name), lambda: dataset_not_found(name))
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

    def prompt_version(self, name: str, pointer: str | None, principal: Principal) -> int:
        snap = self.snapshot()
        check_read(principal, snap.owner("prompt", name), lambda: missing_prompt(name))
        if pointer is not None and is_ascii_int(pointer):
            compiled = snap.prompt(name, version=parse_int(pointer, "prompt", lo=1))
        else:
            compiled = snap.prompt(name, label=pointer)
        if compiled is None:
            raise APIError(404, f"no prompt {name}@{pointer}", code="prompt_not_found")
        return compiled.version.version

    def check_model(self, ref: str, principal: Principal) -> None:
        """A 404 unless ``ref`` (``name@version`` or ``name@alias``) is a model ``principal`` may read."""
        try:
            name = ModelRef.parse(ref).name
        except ValueError as exc:
            raise APIError(400, str(exc), param="model", code="invalid_model") from None
        snap = self.snapshot()
        check_read(principal, snap.owner("model", name), lambda: _missing_model(ref))
        snap.model(ref)


def _missing_model(ref: str) -> APIError:
    return APIError(
        404, f"registry model {ref} does not resolve: list them with `lmdeck models list`", code="model_not_found"
    )
