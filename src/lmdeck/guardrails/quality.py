"""How well a span-finding guardrail does on a labelled set: recall and precision per entity type.

A labelled set is JSON lines, one text each with its gold spans::

    {"id": "pii-0001", "text": "NI number: AB123456C", "spans": [{"start": 11, "end": 20, "entity": "UK_NINO"}]}

A found span counts as a true positive when a gold span has the same entity type and the same
offsets (``match="exact"``, what reversible masking needs) or overlaps one (``match="overlap"``);
each gold span is matched at most once. Texts with no gold span are lookalikes: anything found in
them is a false positive::

    examples = load_labelled_spans(Path("tests/data/guardrails/pii.jsonl"))
    report = await guardrail_quality(PiiGuardrail(), examples)
    report["CREDIT_CARD"].recall  # 1.0
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lmdeck.guardrails.base import GuardContext, Guardrail, Span

#: ``exact``: same entity and offsets; ``overlap``: same entity and at least one character in common.
Match = Literal["exact", "overlap"]


@dataclass(frozen=True)
class LabelledText:
    """One text of a labelled set and its gold spans."""

    id: str
    text: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class EntityQuality:
    """Counts for one entity type; ``precision``/``recall`` are 1.0 when nothing was found/expected."""

    entity: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def support(self) -> int:
        """Gold spans of this entity type."""
        return self.true_positives + self.false_negatives

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.support if self.support else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_labelled_spans(path: Path) -> list[LabelledText]:
    """The texts of a JSON-lines labelled set; ValueError names the line of a malformed row or span."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = row["text"]
            spans = tuple(Span(int(s["start"]), int(s["end"]), str(s["entity"])) for s in row.get("spans", ()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled text ({exc})") from None
        if any(s.end > len(text) for s in spans):
            raise ValueError(f"{path}:{number}: a span ends past the text's {len(text)} characters")
        examples.append(LabelledText(str(row.get("id", number)), text, spans))
    return examples


def _matches(found: Span, gold: Span, match: Match) -> bool:
    if found.entity != gold.entity:
        return False
    if match == "exact":
        return (found.start, found.end) == (gold.start, gold.end)
    return found.start < gold.end and gold.start < found.end


def span_quality(
    examples: Sequence[LabelledText],
    predictions: Sequence[Iterable[Span]],
    match: Match = "exact",
    entities: Iterable[str] | None = None,
) -> dict[str, EntityQuality]:
    """Per entity type, counts of ``predictions[i]`` (spans found in ``examples[i].text``) against the gold.

    ``entities`` limits the report (and the spans counted) to those types; by default every type
    seen in the gold or the predictions. Keys are sorted.
    """
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    wanted = set(entities) if entities is not None else None
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    for example, found_spans in zip(examples, predictions, strict=True):
        gold = [g for g in example.spans if wanted is None or g.entity in wanted]
        unmatched = list(gold)
        for found in found_spans:
            if wanted is not None and found.entity not in wanted:
                continue
            hit = next((g for g in unmatched if _matches(found, g, match)), None)
            if hit is None:
                fp[found.entity] = fp.get(found.entity, 0) + 1
            else:
                unmatched.remove(hit)
                tp[found.entity] = tp.get(found.entity, 0) + 1
        for missed in unmatched:
            fn[missed.entity] = fn.get(missed.entity, 0) + 1
    names = sorted(wanted if wanted is not None else set(tp) | set(fp) | set(fn))
    return {e: EntityQuality(e, tp.get(e, 0), fp.get(e, 0), fn.get(e, 0)) for e in names}


def micro_average(report: dict[str, EntityQuality]) -> EntityQuality:
    """All entity types pooled into one row named ``ALL``."""
    return EntityQuality(
        "ALL",
        sum(q.true_positives for q in report.values()),
        sum(q.false_positives for q in report.values()),
        sum(q.false_negatives for q in report.values()),
    )


async def guardrail_quality(
    guardrail: Guardrail,
    examples: Sequence[LabelledText],
    match: Match = "exact",
    entities: Iterable[str] | None = None,
) -> dict[str, EntityQuality]:
    """:func:`span_quality` of the spans in ``guardrail``'s verdict on each example (checked as an input)."""
    predictions = []
    for example in examples:
        verdict = await guardrail.check(example.text, GuardContext(stage="input", role="user"))
        predictions.append(verdict.spans)
    return span_quality(examples, predictions, match=match, entities=entities)


def format_quality(report: dict[str, EntityQuality]) -> str:
    """A Markdown table: entity, gold spans, found, recall, precision (with the pooled ``ALL`` row last)."""
    lines = [
        "| entity | gold spans | true pos. | false pos. | recall | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for q in [*report.values(), micro_average(report)]:
        lines.append(
            f"| {q.entity} | {q.support} | {q.true_positives} | {q.false_positives} | {q.recall:.3f} | {q.precision:.3f} |"
        )
    return "\n".join(lines)
