"""The chat template: how a list of messages becomes the text the model continues.

The demo model was trained on this exact layout, one special token per role and
``<|end|>`` closing every turn::

    >>> template = ChatTemplate()
    >>> template.render([{"role": "user", "content": "Reverse: abc"}])
    '<|user|>Reverse: abc<|end|><|assistant|>'

Generation stops at ``<|end|>``, the end-of-sequence token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ROLE_TOKENS: dict[str, str] = {
    "system": "<|system|>",
    "developer": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "tool": "<|user|>",
    "function": "<|user|>",
}
END = "<|end|>"
PAD = "<|pad|>"
UNKNOWN = "<|unk|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNKNOWN, END, "<|system|>", "<|user|>", "<|assistant|>")


@dataclass(frozen=True)
class ChatTemplate:
    """Renders messages (``{"role": ..., "content": ...}``) into a prompt for the assistant's turn."""

    end: str = END

    def render(self, messages: Iterable[Mapping[str, str]]) -> str:
        parts = [f"{ROLE_TOKENS[m['role']]}{m['content']}{self.end}" for m in messages]
        return "".join(parts) + ROLE_TOKENS["assistant"]

    def training_text(self, prompt: str, answer: str) -> tuple[str, str]:
        """One single-turn example as (prompt part, answer part); the loss covers the answer part."""
        return self.render([{"role": "user", "content": prompt}]), answer + self.end
