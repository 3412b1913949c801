from __future__ import annotations

import json
from pathlib import Path

from lmdeck.finetune.prep import (
    BaseModelInfo,
    ChatExample,
    PiiScrubber,
    TextScrubber,
    prepare_dataset,
    read_jsonl,
)
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard, PrepOptions

NO_PII = PrepOptions(scrub_pii=False, stratify_by="skill", validation_fraction=0.2)


def _count_rows(n: int, skill: str = "count") -> list[DatasetRow]:
    words = ["carrot", "banana", "strawberry", "apple", "kiwi", "mississippi", "pepper", "letter"]
    rows = []
    for i in range(n):
        word = words[i % len(words)] + "xyzw"[i // len(words) % 4] * (i // 32 + 1)
        letter = "aeiprstxyz"[i % 10]
        rows.append(
            DatasetRow(
                input={"messages": [{"role": "user", "content": f"How many '{letter}' in {word}?"}]},
                expected=str(word.count(letter)),
                metadata={"skill": skill},
                trace_id=f"trace-{skill}-{i}",
            )
        )
    return rows


def test_rendered_through_the_demo_template(demo_base: BaseModelInfo) -> None:
    rows = [DatasetRow(input="Reverse: abc", expected="cba", metadata={"skill": "reverse"})]
    prepared = prepare_dataset(rows, NO_PII, base=demo_base, dataset="r@1")
    assert prepared.train == [
        ChatExample(
            prompt="<|user|>Reverse: abc<|end|><|assistant|>",
            completion="cba<|end|>",
            stratum="reverse",
            source="manual",
            messages=[{"role": "user", "content": "Reverse: abc"}],
            answer="cba",
        )
    ]
    assert prepared.validation == [] and prepared.validation_rows() == []
    assert prepared.card.chat_template == "<|user|>{content}<|end|><|assistant|>{answer}<|end|>"
    # one token per character and per special token: the demo model's tokenizer
    assert prepared.card.lengths["train"].max == len("Reverse: abc") + len("cba") + 4


def test_card_counts_every_row(demo_base: BaseModelInfo) -> None:
    counts = _count_rows(40)
    adds = [
        DatasetRow(input=f"What is {a} + {b}?", expected=f"so {a + b}", metadata={"skill": "add"})
        for a, b in [(11, 28), (305, 7), (42, 19), (7, 7), (91, 63)]
    ]
    corrected = counts[3].model_copy(update={"expected": "0", "metadata": {"skill": "count", "annotation_queue": "q"}})
    rows = [
        *counts,
        *adds,
        counts[0],  # an exact duplicate
        counts[1].model_copy(
            update={"input": {"messages": [{"role": "user", "content": "how many  'E' in BANANAX?"}]}}
        ),
        corrected,  # a person's correction of row 3: kept, the trace's own answer dropped as a near-duplicate
        DatasetRow(input="no answer", metadata={"skill": "count"}),
        DatasetRow(input=[{"role": "user", "content": [{"type": "image_url"}]}], expected="x"),
        DatasetRow(input="long " * 200, expected="too long", metadata={"skill": "add"}),
    ]
    prepared = prepare_dataset(rows, NO_PII.model_copy(update={"max_tokens": 200}), base=demo_base, dataset="c@2")
    card = prepared.card
    assert card.dataset == "c@2" and card.base_model == "demo" and card.rows_in == len(rows) == 51
    assert card.dropped == {"exact_duplicate": 2, "near_duplicate": 1, "no_expected": 1, "too_long": 1, "unusable": 1}
    assert card.train + card.validation + sum(card.dropped.values()) == card.rows_in
    assert card.train == len(prepared.train) and card.validation == len(prepared.validation)
    assert card.strata == {"add": {"train": 4, "validation": 1}, "count": {"train": 32, "validation": 8}}
    assert card.sources == {"correction": 1, "manual": 5, "trace": 39}
    kept = prepared.train + prepared.validation
    assert (
        next(e for e in kept if e.trace_id == counts[3].trace_id and e.source == "correction").completion == "0<|end|>"
    )
    assert not any(e.trace_id == counts[3].trace_id and e.source == "trace" for e in kept)
    assert set(card.trace_ids) == {e.trace_id for e in kept if e.trace_id} and len(card.trace_ids) == 40
    assert card.lengths["train"].count == card.train and card.lengths["validation"].count == card.validation
    assert (
        card.lengths["train"].min <= card.lengths["train"].p50 <= card.lengths["train"].p95 <= card.lengths["train"].max
    )
    assert card.scrubbed == 0 and card.options == NO_PII.model_copy(update={"max_tokens": 200})


def test_length_filter_in_tokens(demo_base: BaseModelInfo) -> None:
    rows = [DatasetRow(input="x" * n, expected="y") for n in (1, 10, 20, 30)]
    # "<|user|>" + text + "<|end|><|assistant|>" + "y<|end|>": text length + 5 tokens
    options = PrepOptions(
        scrub_pii=False, dedupe=False, stratify_by=None, validation_fraction=0.0, min_tokens=15, max_tokens=25
    )
    prepared = prepare_dataset(rows, options, base=demo_base, dataset="l@1")
    assert [e.prompt.count("x") for e in prepared.train] == [10, 20]
    assert prepared.card.dropped == {"too_long": 1, "too_short": 1}
    assert prepared.card.lengths["train"].min == 15 and prepared.card.lengths["train"].max == 25
    assert prepared.card.strata == {}


def test_pii_scrubbed_through_the_guardrail(demo_base: BaseModelInfo) -> None:
    rows = [
        DatasetRow(
            input={
                "messages": [
                    {"role": "user", "content": "Reply to ana.lopez@example.org about card 4111 1111 1111 1111"}
                ]
            },
            expected="Sent to ana.lopez@example.org.",
        ),
        DatasetRow(input="What is 2 + 2?", expected="4"),
    ]
    prepared = prepare_dataset(rows, PrepOptions(validation_fraction=0.0), base=demo_base, dataset="p@1")
    first, second = prepared.train
    assert first.prompt == "<|user|>Reply to <EMAIL_ADDRESS_1> about card <CREDIT_CARD_1><|end|><|assistant|>"
    assert first.completion == "Sent to <EMAIL_ADDRESS_1>.<|end|>"
    assert second.prompt == "<|user|>What is 2 + 2?<|end|><|assistant|>"
    assert prepared.card.scrubbed == 1
    assert "ana.lopez" not in prepared.card.model_dump_json()
    assert isinstance(PiiScrubber(), TextScrubber)


def test_a_scrubber_of_ones_own_and_no_scrubbing(demo_base: BaseModelInfo) -> None:
    class Shout:
        def scrub(self, text: str) -> str:
            return text.upper()

    rows = [DatasetRow(input="mail bob@example.com", expected="ok")]
    shouted = prepare_dataset(rows, PrepOptions(validation_fraction=0.0), base=demo_base, dataset="s", scrubber=Shout())
    assert shouted.train[0].prompt == "<|user|>MAIL BOB@EXAMPLE.COM<|end|><|assistant|>" and shouted.card.scrubbed == 1
    kept = prepare_dataset(rows, PrepOptions(validation_fraction=0.0, scrub_pii=False), base=demo_base, dataset="s")
    assert "bob@example.com" in kept.train[0].prompt and kept.card.scrubbed == 0


def test_written_files(demo_base: BaseModelInfo, tmp_path: Path) -> None:
    prepared = prepare_dataset(_count_rows(20), NO_PII, base=demo_base, dataset="w@1")
    files = prepared.write(tmp_path / "data")
    assert read_jsonl(files.train) == prepared.train and read_jsonl(files.validation) == prepared.validation
    first = json.loads(files.train.read_text().splitlines()[0])
    assert set(first) == {"prompt", "completion", "stratum", "trace_id", "source", "messages", "answer"}
    assert DataCard.model_validate_json(files.card.read_text()) == prepared.card
    assert sorted(p.name for p in files.directory.iterdir()) == ["data_card.json", "train.jsonl", "validation.jsonl"]


def test_same_rows_same_split(demo_base: BaseModelInfo) -> None:
    rows = _count_rows(30)
    a = prepare_dataset(rows, NO_PII, base=demo_base, dataset="d")
    b = prepare_dataset(rows, NO_PII, base=demo_base, dataset="d")
    c = prepare_dataset(rows, NO_PII.model_copy(update={"seed": 1}), base=demo_base, dataset="d")
    assert a.train == b.train and a.validation == b.validation and a.validation != c.validation


def test_validation_rows_to_evaluate_on(demo_base: BaseModelInfo) -> None:
    rows = [
        DatasetRow(input="Mail ana@example.org: how many 'a' in banana?", expected="3", metadata={"skill": "count"}),
        *_count_rows(9),
    ]
    prepared = prepare_dataset(
        rows, PrepOptions(stratify_by="skill", validation_fraction=0.5), base=demo_base, dataset="v"
    )
    validation = prepared.validation_rows()
    assert len(validation) == len(prepared.validation) == 5
    for row, example in zip(validation, prepared.validation, strict=True):
        assert row.input == {"messages": example.messages} and row.expected == example.answer
        assert demo_base.template.render(row.input["messages"]) == example.prompt
        assert example.completion == f"{row.expected}<|end|>"
        assert row.metadata == {"skill": "count", "source": example.source} and row.trace_id == example.trace_id
    scrubbed = next(e for e in prepared.train + prepared.validation if "banana?" in e.prompt and "Mail" in e.prompt)
    assert scrubbed.messages == [{"role": "user", "content": "Mail <EMAIL_ADDRESS_1>: how many 'a' in banana?"}]
