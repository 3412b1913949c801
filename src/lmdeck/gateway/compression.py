"""Prompt compression: fewer input tokens for the same conversation, the system prompt and last turns kept.

Two passes over a chat's messages, each opt-in by the route's ``compression`` block:

1. *dedupe*: runs of blank lines, spaces inside a line and trailing spaces are collapsed (leading
   indentation is kept: it is meaning in code), and a message that repeats an earlier one word
   for word (same role, same text) replaces it: the earlier copy is dropped, the latest kept;
2. *truncate* to ``max_prompt_tokens``: the oldest messages are dropped, one at a time, until the
   rest fits, never a ``system``/``developer`` message nor one of the last ``keep_last_turns``
   messages; an assistant message's tool results go with it, so no ``tool`` message loses its
   call. When only protected messages are left and they still exceed the budget, they are sent
   as they are (``over_budget`` says so).

Messages with tool calls or multi-part content are never rewritten, only kept or dropped.
Tokens are counted by a :class:`TokenCounter`; the default is the WordPiece tokenizer shipped with
the bundled MiniLM model (an estimate of an upstream's count, not its own)::

    outcome = compress(messages, CompressionConfig(max_prompt_tokens=500), WordPieceCounter.load())
    outcome.messages, outcome.tokens_before, outcome.tokens_after
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from lmdeck.protocol.chat import ChatMessage
from lmdeck.settings import CompressionConfig

#: Tokens a chat format adds around each message (role markers, separators), as OpenAI counts them.
MESSAGE_OVERHEAD = 4
PROTECTED_ROLES = frozenset({"system", "developer"})

_TRAILING = re.compile(r"[ \t]+(?=\n|$)")
_INNER_RUN = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")


class TokenCounter(Protocol):
    """Counts the tokens of a text."""

    name: str

    def count(self, text: str) -> int: ...


class WordPieceCounter:
    """Counts tokens with the bundled MiniLM's WordPiece tokenizer (Rust ``tokenizers``, offline).

    >>> WordPieceCounter.load().count("Hello there, general Kenobi")
    7
    """

    name = "wordpiece (all-MiniLM-L6-v2)"

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def load(cls) -> WordPieceCounter:
        from tokenizers import Tokenizer

        from lmdeck.local.catalog import minilm_dir

        tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer)

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass
class Compression:
    """What compression did: the messages to send and the counts the trace records."""

    messages: list[ChatMessage]
    tokens_before: int
    tokens_after: int
    duplicates_dropped: int = 0
    turns_dropped: int = 0
    over_budget: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    def trace_entry(self, counter: TokenCounter) -> dict[str, Any]:
        return {
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "tokens_saved": self.tokens_saved,
            "duplicates_dropped": self.duplicates_dropped,
            "turns_dropped": self.turns_dropped,
            "over_budget": self.over_budget,
            "tokenizer": counter.name,
        }


def squeeze(text: str) -> str:
    """``text`` with trailing spaces, runs of spaces inside lines and runs of blank lines collapsed."""
    text = _TRAILING.sub("", text)
    text = _INNER_RUN.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _rewritable(message: ChatMessage) -> bool:
    return isinstance(message.content, str) and not message.tool_calls and message.role != "tool"


def message_tokens(message: ChatMessage, counter: TokenCounter) -> int:
    extra = str(message.tool_calls) if message.tool_calls else ""
    return MESSAGE_OVERHEAD + counter.count(message.text()) + counter.count(extra)


def compress(messages: list[ChatMessage], config: CompressionConfig, counter: TokenCounter) -> Compression:
    """The compressed conversation (see the module docstring); ``messages`` is left as it was."""
    costs = [message_tokens(m, counter) for m in messages]
    before = sum(costs)
    kept = list(messages)
    duplicates = 0
    if config.dedupe:
        kept = [
            m.model_copy(update={"content": squeeze(m.content)}) if _rewritable(m) and isinstance(m.content, str) else m
            for m in kept
        ]
        latest: dict[tuple[str, str], int] = {}
        for i, m in enumerate(kept):
            if _rewritable(m):
                latest[(m.role, m.text())] = i
        survivors = []
        for i, m in enumerate(kept):
            if _rewritable(m) and m.role not in PROTECTED_ROLES and latest[(m.role, m.text())] != i:
                duplicates += 1
                continue
            survivors.append(m)
        kept = survivors
    costs = [message_tokens(m, counter) for m in kept]
    outcome = Compression(kept, before, sum(costs), duplicates_dropped=duplicates)
    budget = config.max_prompt_tokens
    if budget is None or outcome.tokens_after <= budget:
        return outcome
    protected = {i for i, m in enumerate(kept) if m.role in PROTECTED_ROLES}
    protected |= set(range(max(0, len(kept) - config.keep_last_turns), len(kept)))
    dropped: set[int] = set()
    total = outcome.tokens_after
    for i in range(len(kept)):
        if total <= budget:
            break
        if i in protected or i in dropped:
            continue
        group = {i} | _tool_results(kept, i)
        if group & protected:
            continue
        dropped |= group
        total -= sum(costs[j] for j in group)
    outcome.messages = [m for i, m in enumerate(kept) if i not in dropped]
    outcome.turns_dropped = len(dropped)
    outcome.tokens_after = total
    outcome.over_budget = total > budget
    return outcome


def _tool_results(messages: list[ChatMessage], index: int) -> set[int]:
    """The ``tool`` messages answering the tool calls of ``messages[index]``."""
    calls = messages[index].tool_calls or []
    ids = {c.get("id") for c in calls if isinstance(c, dict)}
    if not ids:
        return set()
    return {j for j, m in enumerate(messages) if j > index and m.role == "tool" and m.tool_call_id in ids}
