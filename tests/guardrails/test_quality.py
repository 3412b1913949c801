"""Recall and precision per entity type, counted from gold and found spans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmdeck.guardrails.base import PASS, GuardContext, Span, Verdict
from lmdeck.guardrails.quality import (
    EntityQuality,
    LabelledText,
    format_quality,
    guardrail_quality,
    load_labelled_spans,
    micro_average,
    span_quality,
)

EXAMPLES = [
    LabelledText("a", "mail ana@example.org or 4111111111111111", (Span(5, 20, "EMAIL"), Span(24, 40, "CARD"))),
    LabelledText("b", "version 1.2.3.4", ()),
]


def test_exact_match_counts_true_false_positives_and_misses() -> None:
    found = [[Span(5, 20, "EMAIL"), Span(24, 39, "CARD")], [Span(8, 15, "IP")]]
    report = span_quality(EXAMPLES, found)
    assert report == {
        "CARD": EntityQuality("CARD", 0, 1, 1),
        "EMAIL": EntityQuality("EMAIL", 1, 0, 0),
        "IP": EntityQuality("IP", 0, 1, 0),
    }
    assert report["CARD"].recall == 0.0 and report["EMAIL"].precision == 1.0
    assert report["IP"].recall == 1.0 and report["IP"].precision == 0.0


def test_overlap_match_accepts_a_span_that_shares_characters_of_the_same_type() -> None:
    found = [[Span(5, 20, "EMAIL"), Span(24, 39, "CARD"), Span(24, 40, "EMAIL")], []]
    report = span_quality(EXAMPLES, found, match="overlap")
    assert report["CARD"] == EntityQuality("CARD", 1, 0, 0)
    assert report["EMAIL"] == EntityQuality("EMAIL", 1, 1, 0)


def test_each_gold_span_is_matched_once_and_entities_limit_the_report() -> None:
    found = [[Span(5, 20, "EMAIL"), Span(5, 20, "EMAIL"), Span(24, 40, "CARD")], []]
    report = span_quality(EXAMPLES, found, entities=["EMAIL"])
    assert report == {"EMAIL": EntityQuality("EMAIL", 1, 1, 0)}
    assert micro_average(span_quality(EXAMPLES, found)) == EntityQuality("ALL", 2, 1, 0)
    with pytest.raises(ValueError, match="2 examples but 1 predictions"):
        span_quality(EXAMPLES, [[]])


def test_rates_are_one_when_there_is_nothing_to_find_or_nothing_found() -> None:
    empty = EntityQuality("X", 0, 0, 0)
    assert (empty.precision, empty.recall, empty.support) == (1.0, 1.0, 0)
    assert EntityQuality("X", 3, 1, 1).f1 == pytest.approx(0.75)


def test_load_reads_json_lines_and_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"id": "x", "text": "ip 10.0.0.1", "spans": [{"start": 3, "end": 11, "entity": "IP"}]})
        + "\n\n"
        + json.dumps({"text": "nothing"})
        + "\n"
    )
    assert load_labelled_spans(good) == [
        LabelledText("x", "ip 10.0.0.1", (Span(3, 11, "IP"),)),
        LabelledText("3", "nothing", ()),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "short", "spans": [{"start": 0, "end": 9, "entity": "IP"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: a span ends past"):
        load_labelled_spans(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a labelled text"):
        load_labelled_spans(bad)


async def test_guardrail_quality_scores_the_spans_of_each_verdict() -> None:
    class FindsEmails:
        name = "emails"
        cost = "fast"
        stages = frozenset({"input"})

        async def check(self, text: str, ctx: GuardContext) -> Verdict:
            at = text.find("ana@example.org")
            return PASS if at < 0 else Verdict("mask", 1.0, "email", (Span(at, at + 15, "EMAIL"),))

    report = await guardrail_quality(FindsEmails(), EXAMPLES)
    assert report["EMAIL"].recall == 1.0 and report["CARD"].recall == 0.0
    table = format_quality(report)
    assert "| CARD | 1 | 0 | 0 | 0.000 | 1.000 |" in table
    assert table.splitlines()[-1] == "| ALL | 2 | 1 | 0 | 0.500 | 1.000 |"
