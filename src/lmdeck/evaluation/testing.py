"""A scripted stand-in for the gateway, for testing evaluators without a model.

>>> inference = ScriptedInference(reply="PASS", vectors={"a": [1.0, 0.0]})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lmdeck.evaluation.base import ChatReply


class ScriptedInference:
    """Replies from a fixed text or a function of the request body; embeddings from a table."""

    def __init__(
        self,
        reply: str | Callable[[dict[str, Any]], str] = "PASS",
        vectors: dict[str, list[float]] | None = None,
    ) -> None:
        self.reply = reply
        self.vectors = vectors or {}
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply:
        self.bodies.append(body)
        text = self.reply(body) if callable(self.reply) else self.reply
        return ChatReply(text=text, trace_id=f"scripted-{len(self.bodies)}")

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            raise KeyError(f"no scripted vector for {missing[0]!r}")
        return [self.vectors[t] for t in texts]
