"""The prepare stage with lmdeck's data preparation: files, card kept with the version, rows to evaluate on."""

from __future__ import annotations

from pathlib import Path

from lmdeck.db import Database
from lmdeck.finetune.jobs.preparation import DataPreparer, messages_of
from lmdeck.local import skills
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import PrepOptions
from lmdeck.registry.datasets import DatasetStore


def test_a_rendered_prompt_reads_back_into_its_messages() -> None:
    prompt = "<|system|>Be brief.<|end|><|user|>How many 'a' in banana?<|end|><|assistant|>"
    assert messages_of(prompt, "<|end|>") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How many 'a' in banana?"},
    ]


def test_held_out_examples_come_back_as_rows_and_the_card_stays_with_the_version(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.migrate()
    store = DatasetStore(db)
    rows = [
        DatasetRow(input=e.prompt, expected=e.answer, metadata={"tag": e.skill})
        for e in skills.heldout_set("count", 40)
    ]
    version, _ = store.create("counts", rows, actor="test")
    prepared = DataPreparer(store)(
        rows,
        PrepOptions(scrub_pii=False, validation_fraction=0.25),
        base_model="demo",
        dataset=version.ref,
        directory=tmp_path / "data",
    )
    assert prepared.train_file.exists() and prepared.validation_file.exists()
    assert prepared.card.validation == len(prepared.validation_rows) > 0
    by_prompt = {r.input: r.expected for r in rows}
    for row in prepared.validation_rows:
        assert isinstance(row.input, list) and row.input[0]["role"] == "user"
        assert by_prompt[row.input[0]["content"]] == row.expected
    assert store.card("counts", version.version) == prepared.card


def test_a_job_that_may_not_change_the_dataset_leaves_its_card_alone(tmp_path: Path) -> None:
    """Another team's job on a shared dataset keeps its card on the job only (``keep_card=False``)."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.migrate()
    store = DatasetStore(db)
    rows = [DatasetRow(input=e.prompt, expected=e.answer) for e in skills.heldout_set("count", 20)]
    version, _ = store.create("shared-counts", rows, actor="test")
    prepared = DataPreparer(store)(
        rows,
        PrepOptions(scrub_pii=False, validation_fraction=0.25),
        base_model="demo",
        dataset=version.ref,
        directory=tmp_path / "data",
        keep_card=False,
    )
    assert prepared.card.train > 0
    assert store.card("shared-counts", version.version) is None
