"""max_input_tokens: counts the request or the message with the estimate, bytes or a tokenizer file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError
from lmdeck.guardrails.builtin import max_tokens
from lmdeck.guardrails.builtin.max_tokens import MaxInputTokens
from lmdeck.guardrails.registry import GuardrailRegistry

MESSAGES = [
    {"role": "system", "content": "x" * 40},
    {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image_url", "image_url": {"url": "u"}}]},
]


def registry() -> GuardrailRegistry:
    reg = GuardrailRegistry()
    max_tokens.register(reg)
    return reg


async def test_a_message_over_the_limit_is_blocked_with_count_and_limit_in_the_reason() -> None:
    guard = registry().create("max_input_tokens", {"max_tokens": 10})
    assert guard.stages == frozenset({"input"})
    verdict = await guard.check("a" * 44, GuardContext("input"))
    assert verdict.blocked and verdict.reason == "the message has 11 tokens (estimate), over the limit of 10"
    assert (await guard.check("a" * 40, GuardContext("input"))).passed


async def test_per_request_counts_every_message_with_the_chat_overhead() -> None:
    guard = MaxInputTokens(max_tokens=20)
    # 40/4 + 8/4 tokens of text, 4 per message, 3 to prime the reply
    assert guard.count("y" * 8, MESSAGES) == 10 + 2 + 8 + 3
    verdict = await guard.check("y" * 8, GuardContext("input", messages=MESSAGES))
    assert verdict.blocked and "the request's messages have 23 tokens" in verdict.reason
    per_message = MaxInputTokens(max_tokens=20, per="message")
    assert (await per_message.check("y" * 8, GuardContext("input", messages=MESSAGES))).passed


async def test_bytes_count_utf8_bytes() -> None:
    guard = MaxInputTokens(max_tokens=5, tokenizer="bytes", per="message")
    assert guard.count("héé") == 5
    assert (await guard.check("héé", GuardContext("input"))).passed
    assert (await guard.check("hééé", GuardContext("input"))).blocked


async def test_a_tokenizer_file_counts_that_tokenizers_tokens(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = tokenizers.Tokenizer(WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    guard = MaxInputTokens(max_tokens=3, per="message", tokenizer=str(path))
    assert guard.count("hello world, hello") == 4  # hello / world / , / hello
    verdict = await guard.check("hello world, hello", GuardContext("input"))
    assert verdict.blocked and f"({path})" in verdict.reason
    assert (await guard.check("x" * 5000 + " hello", GuardContext("input"))).passed  # 2 words, counted in a thread


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": "10"}, "max_tokens must be a whole number"),
        ({"max_tokens": True}, "max_tokens must be a whole number"),
        ({"max_tokens": 10, "per": "conversation"}, "per must be `request` or `message`"),
        (
            {"max_tokens": 10, "tokenizer": "/no/such/tokenizer.json"},
            "neither `estimate`, `bytes` nor a tokenizer.json",
        ),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(GuardrailError, match=message):
        registry().create("max_input_tokens", options)


def test_a_file_that_is_not_a_tokenizer_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(GuardrailError, match=r"is not a tokenizer\.json file"):
        MaxInputTokens(max_tokens=3, tokenizer=str(bad))
