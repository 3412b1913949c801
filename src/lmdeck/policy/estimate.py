"""How many tokens a request may use, known before it is sent.

The prompt is counted two ways: an *estimate* (about four bytes a token) for
display, and a *bound* (one token per byte of text, plus a few per message),
which no byte-level tokenizer exceeds. Limits and budgets reserve the bound, so
what they admit holds whatever the real count turns out to be; settling with
the real count gives the difference back as soon as the response is known.
Output is ``max_tokens`` (times ``n``), or ``assumed_max_tokens`` when the
request sets none::

    need = estimate(body, assumed_max_tokens=4096)
    need.rate_tokens      # prompt bound + max output: what a TPM limit reserves
    need.worst_prompt     # prompt bound, priced for a budget reservation
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lmdeck.pipeline.context import RequestContext, Slot
from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

BYTES_PER_TOKEN = 4
#: Tokens a chat format adds around each message (role markers, separators).
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3


@dataclass(frozen=True)
class TokenNeed:
    prompt: int
    worst_prompt: int
    max_output: int

    @property
    def rate_tokens(self) -> int:
        return self.worst_prompt + self.max_output


#: The request's :class:`TokenNeed`, estimated once by the first step that asks.
TOKEN_NEED: Slot[TokenNeed] = Slot("policy.token_need")


def _size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    return len(orjson.dumps(value))


def _need(prompt_bytes: int, overhead: int, max_output: int) -> TokenNeed:
    estimate = -(-prompt_bytes // BYTES_PER_TOKEN) + overhead
    return TokenNeed(prompt=estimate, worst_prompt=prompt_bytes + overhead, max_output=max_output)


def estimate(body: Any, *, assumed_max_tokens: int) -> TokenNeed:
    if isinstance(body, ChatCompletionRequest):
        size = sum(_size(m.content) + _size(m.name) + _size(m.tool_calls) for m in body.messages)
        size += _size(body.tools) + _size(body.response_format)
        overhead = MESSAGE_OVERHEAD * len(body.messages) + REPLY_PRIMING
        return _need(size, overhead, (body.token_limit() or assumed_max_tokens) * (body.n or 1))
    if isinstance(body, CompletionRequest):
        size = sum(_size(p) for p in body.prompts())
        return _need(size, 0, (body.token_limit() or assumed_max_tokens) * int(getattr(body, "n", None) or 1))
    if isinstance(body, EmbeddingRequest):
        raw = body.input
        if isinstance(raw, str):
            return _need(_size(raw), 0, 0)
        if raw and isinstance(raw[0], int):
            return TokenNeed(len(raw), len(raw), 0)
        if raw and isinstance(raw[0], list):
            count = sum(len(item) for item in raw if isinstance(item, list))
            return TokenNeed(count, count, 0)
        return _need(sum(_size(x) for x in raw), 0, 0)
    return TokenNeed(0, 0, 0)


def token_need(ctx: RequestContext, *, assumed_max_tokens: int) -> TokenNeed:
    """The request's :class:`TokenNeed`, computed once and kept on the context."""
    need = ctx.slots.get(TOKEN_NEED)
    if need is None:
        need = estimate(ctx.body, assumed_max_tokens=assumed_max_tokens)
        ctx.slots.put(TOKEN_NEED, need)
    return need
