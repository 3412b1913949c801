"""Prompt compression: whitespace and duplicates dropped, the oldest turns truncated to a budget."""

from __future__ import annotations

from typing import Any

from lmdeck.gateway.compression import MESSAGE_OVERHEAD, WordPieceCounter, compress, squeeze
from lmdeck.protocol.chat import ChatMessage
from lmdeck.settings import CompressionConfig


class Words:
    """Counts whitespace-separated words: easy to predict in a test."""

    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())


def msgs(*pairs: tuple[str, Any], **extra: Any) -> list[ChatMessage]:
    return [ChatMessage.model_validate({"role": role, "content": content, **extra}) for role, content in pairs]


def test_squeeze_collapses_blank_lines_and_inner_runs_but_keeps_indentation() -> None:
    assert squeeze("a  b \t\n\n\n\n    indented   code  \n") == "a b\n\n    indented code"


def test_a_repeated_message_keeps_only_its_latest_copy() -> None:
    messages = msgs(("system", "be brief"), ("user", "hi  there"), ("assistant", "hello"), ("user", "hi there"))
    outcome = compress(messages, CompressionConfig(), Words())
    assert [(m.role, m.content) for m in outcome.messages] == [
        ("system", "be brief"),
        ("assistant", "hello"),
        ("user", "hi there"),
    ]
    assert outcome.duplicates_dropped == 1
    assert outcome.tokens_saved == 2 + MESSAGE_OVERHEAD
    assert messages[1].content == "hi  there"  # the request itself is left alone


def test_truncation_drops_the_oldest_turns_and_keeps_the_system_prompt_and_the_last_turns() -> None:
    long = " ".join(["word"] * 20)
    messages = msgs(
        ("system", "rules"),
        ("user", f"one {long}"),
        ("assistant", f"two {long}"),
        ("user", f"three {long}"),
        ("assistant", "four"),
        ("user", "five"),
    )
    config = CompressionConfig(max_prompt_tokens=40, keep_last_turns=2)
    outcome = compress(messages, config, Words())
    assert [m.text().split()[0] for m in outcome.messages] == ["rules", "three", "four", "five"]
    assert outcome.turns_dropped == 2 and outcome.tokens_after <= 40 and not outcome.over_budget
    assert outcome.tokens_before - outcome.tokens_after == outcome.tokens_saved == 2 * (21 + MESSAGE_OVERHEAD)


def test_protected_messages_over_the_budget_are_sent_and_flagged() -> None:
    messages = msgs(("system", " ".join(["rule"] * 50)), ("user", "old"), ("user", "new"))
    outcome = compress(messages, CompressionConfig(max_prompt_tokens=10, keep_last_turns=1), Words())
    assert [m.text() for m in outcome.messages][1:] == ["new"]
    assert outcome.over_budget


def test_tool_results_go_with_the_call_that_asked_for_them() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        ChatMessage(role="user", content="use the tool " * 5),
        ChatMessage(role="assistant", content=None, tool_calls=[call]),
        ChatMessage(role="tool", content="result " * 10, tool_call_id="c1"),
        ChatMessage(role="user", content="and now?"),
    ]
    outcome = compress(messages, CompressionConfig(max_prompt_tokens=10, keep_last_turns=1), Words())
    assert [m.role for m in outcome.messages] == ["user"]
    assert outcome.turns_dropped == 3


def test_without_a_budget_nothing_is_truncated() -> None:
    messages = msgs(*[("user", f"turn {i}") for i in range(30)])
    assert len(compress(messages, CompressionConfig(), Words()).messages) == 30


def test_the_wordpiece_counter_counts_subwords() -> None:
    counter = WordPieceCounter.load()
    assert counter.count("") == 0
    assert counter.count("unbelievable tokenization") > 2
