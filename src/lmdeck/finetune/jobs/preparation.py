"""The prepare stage's default :class:`~lmdeck.finetune.jobs.stages.Preparer`: lmdeck's data preparation
(:mod:`lmdeck.finetune.prep`) with the base model's tokenizer and chat template, the PII guardrail's
scrubbing when ``prep.scrub_pii`` asks for it, and the data card kept with the dataset version.

The held-out examples come back as dataset rows to evaluate on: each rendered prompt read back into
chat messages (the eval runs send them through the chat API, which renders them again) and each
completion, without its end token, as the expected answer::

    preparer = DataPreparer(datasets_store, model_dir=None)
    prepared = preparer(rows, PrepOptions(), base_model="demo", dataset="counts@3", directory=job_dir / "data")
    prepared.validation_rows[0].input      # [{"role": "user", "content": "How many 'a' in banana?"}]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from lmdeck.finetune.jobs.stages import Prepared
from lmdeck.finetune.prep import BaseModelError, ChatExample, load_base_model, prepare_dataset
from lmdeck.finetune.prep.scrubbing import PiiScrubber, TextScrubber
from lmdeck.local.chat_template import ROLE_TOKENS
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import PrepOptions
from lmdeck.registry.datasets import DatasetStore

_ROLES = {ROLE_TOKENS[role]: role for role in ("system", "user", "assistant")}
_SPLIT = re.compile("(" + "|".join(re.escape(token) for token in _ROLES) + ")")


def messages_of(prompt: str, end: str) -> list[dict[str, str]]:
    """The chat messages a prompt rendered by the chat template came from (the open assistant turn left out)."""
    messages, role = [], None
    for part in _SPLIT.split(prompt):
        if part in _ROLES:
            role = _ROLES[part]
        elif role is not None and part.endswith(end):
            messages.append({"role": role, "content": part[: -len(end)]})
            role = None
    return messages


def row_of(example: ChatExample, end: str) -> DatasetRow:
    """A held-out example as a dataset row: messages in, the answer expected."""
    answer = example.completion[: -len(end)] if example.completion.endswith(end) else example.completion
    metadata = {"stratum": example.stratum} if example.stratum else {}
    return DatasetRow(
        input=messages_of(example.prompt, end), expected=answer, metadata=metadata, trace_id=example.trace_id
    )


class DataPreparer:
    """Prepares a job's training dataset version (blocking: the service calls it from a worker thread)."""

    def __init__(self, datasets: DatasetStore, *, model_dir: Path | None = None) -> None:
        self.datasets = datasets
        self.model_dir = model_dir
        self._scrubber: TextScrubber | None = None

    def scrubber(self) -> TextScrubber:
        if self._scrubber is None:
            self._scrubber = PiiScrubber()
        return self._scrubber

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
        """Raises ``ValueError`` naming the fix when the base model cannot be found."""
        try:
            base = load_base_model(base_model, model_dir=self.model_dir)
        except BaseModelError as exc:
            raise ValueError(str(exc)) from None
        prepared = prepare_dataset(
            rows, options, base=base, dataset=dataset, scrubber=self.scrubber() if options.scrub_pii else None
        )
        files = prepared.write(directory)
        name, _, version = dataset.partition("@")
        if keep_card and version.isdigit():
            self.datasets.set_card(name, int(version), prepared.card)
        end = base.template.end
        return Prepared(
            files.train, files.validation, prepared.card, base.directory, [row_of(e, end) for e in prepared.validation]
        )
