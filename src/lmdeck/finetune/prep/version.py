"""Preparing a registry dataset version: load its rows, prepare them, write the files, keep the card.

What a fine-tuning job calls before it trains::

    prepared = await prepare_version(runtime.datasets, "counts", "3", principal=developer,
                                     options=PrepOptions(stratify_by="skill"),
                                     base=load_base_model("demo"), directory=job_dir / "data")
    prepared.files.train        # job_dir/data/train.jsonl
    prepared.version.ref        # 'counts@3'
    prepared.dataset.card       # also kept with the version: GET /api/registry/datasets/counts/versions/3/card

The caller must be allowed to read the dataset (else a 404, as reading it would be). The card
replaces any card an earlier preparation kept with the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

from lmdeck.finetune.prep.base_model import BaseModelInfo
from lmdeck.finetune.prep.prepare import prepare_dataset
from lmdeck.finetune.prep.prepared import PreparedDataset, PreparedFiles
from lmdeck.finetune.prep.scrubbing import TextScrubber
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import PrepOptions
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.registry.datasets import DatasetVersion

#: Rows read from the store per query.
PAGE_ROWS = 5_000


@dataclass(frozen=True)
class PreparedVersion:
    """A prepared dataset version: which version, the examples and card, and the files written."""

    version: DatasetVersion
    dataset: PreparedDataset
    files: PreparedFiles


def prepare_version_blocking(
    datasets: DatasetRegistry,
    name: str,
    ref: int | str,
    *,
    principal: Principal,
    options: PrepOptions,
    base: BaseModelInfo,
    directory: Path,
    scrubber: TextScrubber | None = None,
) -> PreparedVersion:
    """:func:`prepare_version`, blocking (for a worker thread)."""
    datasets.readable(name, principal)
    version = datasets.store.version(name, ref)
    rows: list[DatasetRow] = []
    while len(rows) < version.row_count:
        page = datasets.store.rows(name, version.version, offset=len(rows), limit=PAGE_ROWS)
        if not page:
            break
        rows.extend(page)
    prepared = prepare_dataset(rows, options, base=base, dataset=version.ref, scrubber=scrubber)
    files = prepared.write(directory)
    datasets.store.set_card(name, version.version, prepared.card)
    return PreparedVersion(version, prepared, files)


async def prepare_version(
    datasets: DatasetRegistry,
    name: str,
    ref: int | str,
    *,
    principal: Principal,
    options: PrepOptions,
    base: BaseModelInfo,
    directory: Path,
    scrubber: TextScrubber | None = None,
) -> PreparedVersion:
    """Prepare version ``ref`` (number or content hash) of dataset ``name`` for ``base``.

    Writes ``train.jsonl``, ``validation.jsonl`` and ``data_card.json`` into ``directory`` and keeps
    the card with the version. Runs in a worker thread. Raises APIError 404 when the dataset or
    version does not exist or ``principal`` may not read it.
    """
    return await anyio.to_thread.run_sync(
        lambda: prepare_version_blocking(
            datasets,
            name,
            ref,
            principal=principal,
            options=options,
            base=base,
            directory=directory,
            scrubber=scrubber,
        )
    )
