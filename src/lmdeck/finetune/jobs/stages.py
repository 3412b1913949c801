"""What a job's stages need from the other parts of fine-tuning, as small protocols.

A :class:`Preparer` turns a dataset version's rows into training files (:mod:`lmdeck.finetune.prep`);
a :class:`JobRunner` runs the training worker on a job directory (:mod:`lmdeck.finetune.runners`).
The job service holds them by these protocols, so tests can hand it a runner written for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard, PrepOptions

RunnerState = Literal["running", "exited", "lost"]


class JobRunner(Protocol):
    """Runs ``python -m lmdeck.finetune.training.worker JOB_DIR`` somewhere.

    ``start`` returns a handle (a pid, a Ray submission id); starting again on a directory that
    holds checkpoints resumes from the newest. ``state`` says whether the worker still runs;
    ``cancel`` asks it to stop (it writes ``cancelled`` to ``progress.jsonl``).
    """

    name: str

    def start(self, job_dir: Path) -> str: ...

    def state(self, handle: str) -> RunnerState: ...

    def cancel(self, handle: str) -> None: ...


@dataclass(frozen=True)
class Prepared:
    """A prepared dataset: the files the worker trains on, the card, and the held-out examples as
    dataset rows (``input``: the chat messages, ``expected``: the answer) to evaluate on."""

    train_file: Path
    validation_file: Path
    card: DataCard
    base_model_dir: Path
    validation_rows: list[DatasetRow]


class Preparer(Protocol):
    """Prepares ``rows`` of dataset version ``dataset`` for base model ``base_model`` into ``directory``.

    Raises ``ValueError`` with a message for the job's error when the rows cannot be used.
    """

    def __call__(
        self,
        rows: Sequence[DatasetRow],
        options: PrepOptions,
        *,
        base_model: str,
        dataset: str,
        directory: Path,
        keep_card: bool = True,
    ) -> Prepared:
        """``keep_card``: also store the data card with the dataset version (only for a caller who may
        change that dataset; the job keeps its own copy either way)."""
        ...
