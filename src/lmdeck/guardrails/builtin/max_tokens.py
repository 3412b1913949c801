"""``max_input_tokens``: refuse a request whose input is longer than a number of tokens.

    long-prompts: {type: max_input_tokens, options: {max_tokens: 8000}}
    per-message:  {type: max_input_tokens, options: {max_tokens: 2000, per: message}}
    llama-exact:  {type: max_input_tokens, options: {max_tokens: 4096, tokenizer: /models/llama/tokenizer.json}}

``per: request`` (the default) counts every message of the request (``ctx.messages``, the chat
format's few tokens per message included) whichever message is being checked; ``per:
message`` counts the checked text alone. Tokens are counted by ``tokenizer``: ``estimate``
(default: about four bytes a token, the rule of lmdeck's rate limits and budgets, see
:mod:`lmdeck.policy.estimate`), ``bytes`` (one token per byte of UTF-8: a bound no byte-level
tokenizer exceeds), or the path of a Hugging Face ``tokenizer.json`` (the exact count of that
model's tokenizer; needs the ``tokenizers`` package of the ``local`` extra). Over the limit, the
verdict is ``block``; the reason gives the count and the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Stage,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.registry import GuardrailRegistry
from lmdeck.policy.estimate import BYTES_PER_TOKEN, MESSAGE_OVERHEAD, REPLY_PRIMING

#: Texts longer than this are counted by a tokenizer file in a worker thread, off the event loop.
THREAD_ABOVE_CHARS = 4096


def _estimate(text: str) -> int:
    return -(-len(text.encode()) // BYTES_PER_TOKEN)


def _bytes(text: str) -> int:
    return len(text.encode())


def _tokenizer_file(path: str) -> Callable[[str], int]:
    if not Path(path).is_file():
        raise GuardrailError(
            f"max_input_tokens: tokenizer {path!r} is neither `estimate`, `bytes` nor a tokenizer.json file"
        )
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise GuardrailError(
            "max_input_tokens: a tokenizer file needs the `tokenizers` package: pip install 'lmdeck[local]'"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:
        raise GuardrailError(f"max_input_tokens: {path!r} is not a tokenizer.json file: {exc}") from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def message_texts(message: Mapping[str, Any]) -> list[str]:
    """The text of a chat message (OpenAI shape): its ``content`` string or the ``text`` of each part."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    return []


class MaxInputTokens:
    """Refuses an input over ``max_tokens`` tokens (``per`` request or message, counted by ``tokenizer``).

    Raises GuardrailError for a ``max_tokens`` that is not a positive whole number, an unknown
    ``per``, or a ``tokenizer`` that is none of ``estimate``, ``bytes`` or a tokenizer.json file.
    """

    name = "max_input_tokens"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input"})

    def __init__(
        self,
        resources: GuardResources | None = None,
        *,
        max_tokens: int,
        per: str = "request",
        tokenizer: str = "estimate",
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise GuardrailError(f"max_input_tokens: max_tokens must be a whole number >= 1, got {max_tokens!r}")
        if per not in ("request", "message"):
            raise GuardrailError(f"max_input_tokens: per must be `request` or `message`, got {per!r}")
        if not isinstance(tokenizer, str):
            raise GuardrailError("max_input_tokens: tokenizer must be `estimate`, `bytes` or a tokenizer.json path")
        self.max_tokens = max_tokens
        self.per = per
        self.tokenizer = tokenizer
        self.exact = tokenizer not in ("estimate", "bytes")
        self._count = {"estimate": _estimate, "bytes": _bytes}.get(tokenizer) or _tokenizer_file(tokenizer)

    def count(self, text: str, messages: Sequence[Mapping[str, Any]] = ()) -> int:
        """Tokens of ``text``, or of every message in ``messages`` when counting ``per`` request."""
        if self.per == "message" or not messages:
            return self._count(text)
        total = sum(self._count(t) for m in messages for t in message_texts(m))
        return total + MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        size = len(text) if self.per == "message" else len(text) + sum(len(str(m.get("content"))) for m in ctx.messages)
        if self.exact and size > THREAD_ABOVE_CHARS:
            tokens = await run_blocking(self.count, text, ctx.messages)
        else:
            tokens = self.count(text, ctx.messages)
        if tokens <= self.max_tokens:
            return PASS
        single = self.per == "message" or not ctx.messages
        what, verb = ("the message", "has") if single else ("the request's messages", "have")
        return Verdict(
            "block",
            score=1.0,
            reason=f"{what} {verb} {tokens} tokens ({self.tokenizer}), over the limit of {self.max_tokens}",
        )


def register(registry: GuardrailRegistry) -> None:
    registry.add("max_input_tokens", MaxInputTokens)
