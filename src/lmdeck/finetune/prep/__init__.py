"""Data preparation for fine-tuning: a dataset version becomes chat examples and a data card.

Rows are converted to chat (``conversion``), scrubbed of PII through the PII guardrail
(``scrubbing``), deduplicated exactly and nearly (``dedup``), rendered through the base
model's chat template and filtered by token length (``prepare``), split train/validation by
stratum (``split``), and described by a :class:`~lmdeck.protocol.training.DataCard`::

    base = load_base_model("demo")
    prepared = prepare_dataset(rows, PrepOptions(), base=base, dataset="counts@3")   # blocking
    files = prepared.write(directory)     # train.jsonl, validation.jsonl, data_card.json

    # what a fine-tuning job calls: also keeps the card with the dataset version
    done = await prepare_version(datasets, "counts", "3", principal=principal,
                                 options=PrepOptions(), base=base, directory=job_dir / "data")

Public signatures:

- ``prepare_dataset(rows: Sequence[DatasetRow], options: PrepOptions, *, base: BaseModelInfo,
  dataset: str, scrubber: TextScrubber | None = None) -> PreparedDataset``
- ``async prepare_version(datasets: DatasetRegistry, name: str, ref: int | str, *, principal: Principal,
  options: PrepOptions, base: BaseModelInfo, directory: Path, scrubber: TextScrubber | None = None)
  -> PreparedVersion`` (``.version: DatasetVersion``, ``.dataset: PreparedDataset``, ``.files: PreparedFiles``);
  ``prepare_version_blocking`` is the same for a worker thread
- ``load_base_model(name: str, *, model_dir: Path | None = None) -> BaseModelInfo``
  (``BaseModelInfo.from_directory(name, path)`` for a checkpoint directory)
- ``PreparedDataset.write(directory: Path) -> PreparedFiles`` (``.train``, ``.validation``, ``.card`` paths);
  ``read_jsonl(path) -> list[ChatExample]``
- ``PreparedDataset.validation_rows() -> list[DatasetRow]``: the held-out examples as rows to evaluate on
  (``input``: ``{"messages": [...]}``, ``expected``: the answer, ``metadata[stratify_by]``: the stratum)
- ``DatasetStore.set_card(name, version, card)`` / ``DatasetStore.card(name, version)``
  (``lmdeck.registry.datasets``): the card kept with a dataset version
"""

from lmdeck.finetune.prep.base_model import BaseModelError, BaseModelInfo, load_base_model
from lmdeck.finetune.prep.examples import ChatExample, Source
from lmdeck.finetune.prep.prepare import prepare_dataset
from lmdeck.finetune.prep.prepared import (
    CARD_FILE,
    TRAIN_FILE,
    VALIDATION_FILE,
    PreparedDataset,
    PreparedFiles,
    read_jsonl,
)
from lmdeck.finetune.prep.scrubbing import PiiScrubber, TextScrubber
from lmdeck.finetune.prep.version import PreparedVersion, prepare_version, prepare_version_blocking

__all__ = [
    "CARD_FILE",
    "TRAIN_FILE",
    "VALIDATION_FILE",
    "BaseModelError",
    "BaseModelInfo",
    "ChatExample",
    "PiiScrubber",
    "PreparedDataset",
    "PreparedFiles",
    "PreparedVersion",
    "Source",
    "TextScrubber",
    "load_base_model",
    "prepare_dataset",
    "prepare_version",
    "prepare_version_blocking",
    "read_jsonl",
]
