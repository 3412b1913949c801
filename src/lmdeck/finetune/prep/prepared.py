"""A prepared dataset: training and validation examples with their data card, and the files they go to.

::

    prepared = prepare_dataset(rows, PrepOptions(), base=load_base_model("demo"), dataset="counts@3")
    files = prepared.write(job_dir / "data")
    files.train          # .../data/train.jsonl: one ChatExample as JSON per line
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmdeck.finetune.prep.examples import ChatExample
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
CARD_FILE = "data_card.json"


@dataclass(frozen=True)
class PreparedFiles:
    """Where :meth:`PreparedDataset.write` put the examples and the card."""

    directory: Path
    train: Path
    validation: Path
    card: Path


def write_jsonl(path: Path, examples: list[ChatExample]) -> None:
    """``examples`` as JSON lines, written to a temporary file and moved into place."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(example.model_dump_json())
            handle.write("\n")
    partial.replace(path)


def read_jsonl(path: Path) -> list[ChatExample]:
    """The examples of a file written by :func:`write_jsonl`."""
    with path.open(encoding="utf-8") as handle:
        return [ChatExample.model_validate_json(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class PreparedDataset:
    """Examples ready to train on (``train``) and to evaluate on (``validation``), and their card."""

    train: list[ChatExample]
    validation: list[ChatExample]
    card: DataCard

    def validation_rows(self) -> list[DatasetRow]:
        """The validation examples as dataset rows (``input``: messages, ``expected``: answer), e.g. for an
        eval run; the stratum is kept in ``metadata`` under the ``stratify_by`` key."""
        return [e.as_row(self.card.options.stratify_by) for e in self.validation]

    def write(self, directory: Path) -> PreparedFiles:
        """Write ``train.jsonl``, ``validation.jsonl`` and ``data_card.json`` into ``directory`` (made if missing).

        Each file is written whole or not at all (written aside, then renamed).
        """
        directory.mkdir(parents=True, exist_ok=True)
        files = PreparedFiles(directory, directory / TRAIN_FILE, directory / VALIDATION_FILE, directory / CARD_FILE)
        write_jsonl(files.train, self.train)
        write_jsonl(files.validation, self.validation)
        partial = files.card.with_name(CARD_FILE + ".partial")
        partial.write_text(self.card.model_dump_json(indent=2) + "\n", encoding="utf-8")
        partial.replace(files.card)
        return files
