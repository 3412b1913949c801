"""The pii guardrail on the shipped labelled set: recall and precision per structured entity type."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.guardrails.builtin.pii import DEFAULT_ENTITIES, PiiGuardrail
from lmdeck.guardrails.quality import format_quality, guardrail_quality, load_labelled_spans, micro_average

PII_SET = Path(__file__).resolve().parents[2] / "data" / "guardrails" / "pii.jsonl"


def test_the_labelled_set_has_several_hundred_texts_with_every_default_type_and_lookalikes() -> None:
    examples = load_labelled_spans(PII_SET)
    assert len(examples) >= 400
    counts = {e: sum(1 for x in examples for s in x.spans if s.entity == e) for e in DEFAULT_ENTITIES}
    assert min(counts.values()) >= 25, counts
    assert sum(1 for x in examples if not x.spans) >= 100
    for example in examples:
        for span in example.spans:
            value = example.text[span.start : span.end]
            assert value == value.strip() and value, (example.id, span)


@pytest.mark.slow
async def test_recall_is_at_least_095_on_every_structured_type_with_exact_offsets() -> None:
    report = await guardrail_quality(PiiGuardrail(), load_labelled_spans(PII_SET), match="exact")
    assert set(report) == set(DEFAULT_ENTITIES)
    low = {e: round(q.recall, 3) for e, q in report.items() if q.recall < 0.95}
    assert not low, f"recall under 0.95: {low}"
    noisy = {e: round(q.precision, 3) for e, q in report.items() if q.precision < 0.9}
    assert not noisy, f"precision under 0.9: {noisy}"


@pytest.mark.slow
async def test_on_the_handwritten_set_never_tuned_on_pooled_recall_and_precision_stay_above_095() -> None:
    examples = load_labelled_spans(PII_SET.with_name("pii_handwritten.jsonl"))
    assert len(examples) >= 60 and sum(1 for x in examples if not x.spans) >= 20
    report = await guardrail_quality(PiiGuardrail(), examples, match="exact")
    pooled = micro_average(report)
    assert pooled.recall >= 0.95 and pooled.precision >= 0.95, format_quality(report)
