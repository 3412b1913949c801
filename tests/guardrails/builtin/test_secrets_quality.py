"""The secrets guardrail on the shipped labelled set: every secret found with its type and exact span."""

from __future__ import annotations

from pathlib import Path

from lmdeck.guardrails.builtin.secrets import SecretsGuardrail
from lmdeck.guardrails.quality import format_quality, guardrail_quality, load_labelled_spans, micro_average

SECRETS_SET = Path(__file__).resolve().parents[2] / "data" / "guardrails" / "secrets.jsonl"


async def test_recall_and_precision_on_the_secrets_set() -> None:
    examples = load_labelled_spans(SECRETS_SET)
    assert len(examples) >= 60 and sum(1 for x in examples if not x.spans) >= 20
    report = await guardrail_quality(SecretsGuardrail(), examples, match="exact")
    assert len(report) >= 12
    pooled = micro_average(report)
    assert pooled.recall >= 0.95 and pooled.precision >= 0.95, format_quality(report)
