from __future__ import annotations

from typing import Any

import pytest

from lmdeck.finetune.prep.conversion import Conversation, answer_of, convert, messages_of, source_of, stratum_of
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.dataset_registry import row_from_trace

USER = [{"role": "user", "content": "How many 'r' in carrot?"}]


def test_a_row_made_from_a_chat_trace() -> None:
    record = TraceRecord(
        route="demo",
        status_code=200,
        tags=["skill:count", "beta"],
        request_body={
            "model": "demo",
            "messages": [{"role": "system", "content": "Be brief."}, *USER],
            "metadata": {"lang": "en"},
        },
        response_body={"choices": [{"index": 0, "message": {"role": "assistant", "content": "2"}}]},
    )
    row = row_from_trace(record)
    assert row is not None
    assert row.metadata["tags"] == ["skill:count", "beta"] and row.metadata["request_metadata"] == {"lang": "en"}
    converted = convert(row, "skill")
    assert converted == Conversation(
        [{"role": "system", "content": "Be brief."}, *USER], "2", "count", record.id, "trace"
    )
    assert [stratum_of(row, key) for key in ("lang", "tag", "route", "other")] == [
        "en",
        "beta,skill:count",
        "demo",
        None,
    ]
    bare = row_from_trace(TraceRecord(route="demo", status_code=200, request_body={"prompt": "hi"}))
    assert bare is not None and "tags" not in bare.metadata and "request_metadata" not in bare.metadata


@pytest.mark.parametrize(
    "given",
    [
        "How many 'r' in carrot?",
        {"messages": USER},
        USER,
        {"prompt": "How many 'r' in carrot?"},
        ["How many 'r' in carrot?"],
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "How many 'r' in carrot?"}]}]},
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "How many 'r' "}, {"type": "text", "text": "in carrot?"}],
            }
        ],
    ],
)
def test_input_shapes(given: Any) -> None:
    assert messages_of(given) == USER


@pytest.mark.parametrize(
    "given",
    [
        None,
        "   ",
        42,
        [{"role": "wizard", "content": "hi"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}],
        ["two", "prompts"],
        {"other": "x"},
        [],
    ],
)
def test_inputs_without_a_text_conversation(given: Any) -> None:
    assert messages_of(given) is None
    assert convert(DatasetRow(input=given, expected="x"), None) == "unusable"


def test_expected_shapes() -> None:
    assert answer_of("2") == "2"
    assert answer_of({"role": "assistant", "content": "2"}) == "2"
    assert answer_of({"content": "2"}) == answer_of({"text": "2"}) == "2"
    assert answer_of({"name": "Ana", "age": 3}) == '{"name":"Ana","age":3}'  # JSON answers stay JSON
    assert answer_of([1, 2]) == "[1,2]" and answer_of(7) == "7"
    for unusable in (None, "", "  ", {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}):
        assert answer_of(unusable) is None
        assert convert(DatasetRow(input="hi", expected=unusable), None) == "no_expected"


def test_sources_and_strata() -> None:
    assert source_of(DatasetRow(input="x", trace_id="t1")) == "trace"
    assert source_of(DatasetRow(input="x")) == "manual"
    assert source_of(DatasetRow(input="x", trace_id="t1", metadata={"annotation_queue": "review"})) == "correction"
    assert source_of(DatasetRow(input="x", trace_id="t1", metadata={"source": "correction"})) == "correction"
    tagged = convert(DatasetRow(input="x", expected="y", metadata={"tags": ["b", "a"], "skill": 3}), "tags")
    assert isinstance(tagged, Conversation) and tagged.stratum == "a,b"
    assert isinstance(c := convert(DatasetRow(input="x", expected="y", metadata={"skill": 3}), "skill"), Conversation)
    assert c.stratum == "3"
    assert isinstance(c := convert(DatasetRow(input="x", expected="y"), "skill"), Conversation) and c.stratum is None
