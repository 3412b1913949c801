"""The ``learned`` strategy: a classifier trained on past traces picks the cheapest target that suffices.

``lmdeck routers train ROUTE`` (see :mod:`lmdeck.evaluation.routers`) fits a logistic regression
from the request's MiniLM embedding (384 numbers) to the *tier* that sufficed for it (0: the
first, cheapest target listed) and saves it as JSON (no pickle) where the gateway loads it:
``<data_dir>/routers/<route>.json`` unless the route's ``learned.model_path`` says otherwise.
Per request the strategy embeds the conversation's user text (in the embedder's batch thread,
off the event loop), computes ``P(tier <= i)`` for each tier and sends the request to the
cheapest tier whose probability reaches ``learned.threshold``; the other targets follow as
failover, in the order listed. A route with no trained router yet is served by its last
(most capable) target first, with the reason ``untrained`` on the trace::

    router = TrainedRouter.load(path)
    router.suffices([0.1, ...])          # [0.83, 1.0]: P(tier 0 suffices), P(tier <= 1 suffices)

The file is read again when it changes (checked at most once a second), so a retrained router
takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.gateway.routing.tiers import RoutingDecision, TierCall
from lmdeck.pipeline.context import RequestContext
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import ConfigError, LearnedRouterConfig

log = logging.getLogger(__name__)

#: Texts → unit vectors; the default loads all-MiniLM-L6-v2 in-process on first use.
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]

FORMAT_VERSION = 1
RELOAD_EVERY_S = 1.0


def router_path(data_dir: Path, route: str, config: LearnedRouterConfig | None) -> Path:
    """Where the trained router of ``route`` lives (``learned.model_path``, else under the data directory)."""
    if config is not None and config.model_path is not None:
        return config.model_path
    return data_dir / "routers" / f"{route}.json"


def request_text(body: Any) -> str:
    """The text a router embeds: the user (and system) turns of a chat, or a completion's prompt."""
    if isinstance(body, ChatCompletionRequest):
        parts = []
        for message in body.messages:
            if message.role in ("user", "system", "developer"):
                content = message.content
                if isinstance(content, list):
                    content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
                parts.append(content or "")
        return "\n".join(parts)
    if isinstance(body, CompletionRequest):
        prompt = body.prompt
        return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
    return ""


@dataclass(frozen=True)
class TrainedRouter:
    """A fitted multinomial (or binary) logistic regression over tiers, and how it was measured.

    ``classes`` are the tiers it saw in training; ``coef`` has one row per class (one row in
    all for two classes, sklearn's binary form); ``targets`` are the target ids of the route,
    in order, when it was trained.
    """

    route: str
    targets: list[str]
    classes: list[int]
    coef: list[list[float]]
    intercept: list[float]
    metrics: dict[str, Any]

    def probabilities(self, vector: Sequence[float]) -> dict[int, float]:
        """``{tier: P(tier is the cheapest that suffices)}`` for one embedding."""
        logits = [
            sum(w * x for w, x in zip(row, vector, strict=True)) + b
            for row, b in zip(self.coef, self.intercept, strict=True)
        ]
        if len(self.classes) == 1:
            return {self.classes[0]: 1.0}
        if len(self.classes) == 2 and len(logits) == 1:
            p = 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, logits[0]))))
            return {self.classes[0]: 1.0 - p, self.classes[1]: p}
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return {tier: e / total for tier, e in zip(self.classes, exps, strict=True)}

    def suffices(self, vector: Sequence[float], tiers: int) -> list[float]:
        """``P(a tier <= i suffices)`` for each tier i in ``range(tiers)`` (the last is 1.0)."""
        probs = self.probabilities(vector)
        out, running = [], 0.0
        for tier in range(tiers):
            running += probs.get(tier, 0.0)
            out.append(1.0 if tier == tiers - 1 else min(1.0, running))
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": FORMAT_VERSION,
                "route": self.route,
                "targets": self.targets,
                "classes": self.classes,
                "coef": self.coef,
                "intercept": self.intercept,
                "metrics": self.metrics,
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
        )

    @classmethod
    def load(cls, path: Path) -> TrainedRouter:
        """Read a router file; ``ConfigError`` naming the fix when it is not one."""
        try:
            data = orjson.loads(path.read_bytes())
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
            return cls(
                route=str(data["route"]),
                targets=[str(t) for t in data["targets"]],
                classes=[int(c) for c in data["classes"]],
                coef=[[float(v) for v in row] for row in data["coef"]],
                intercept=[float(v) for v in data["intercept"]],
                metrics=dict(data.get("metrics") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"cannot read the trained router {path}: {exc}; train it again with `lmdeck routers train`"
            ) from None


class LearnedRouters:
    """The trained routers of a gateway, by file, re-read when the file changes; and the embedder they share.

    >>> routers = LearnedRouters(embed=my_embed)  # doctest: +SKIP
    >>> routers.get(Path(".lmdeck/routers/smart.json"))  # doctest: +SKIP
    """

    def __init__(self, embed: Embed | None = None, data_dir: Path = Path(".lmdeck")) -> None:
        self._embed = embed
        self.data_dir = data_dir
        self._loaded: dict[Path, tuple[float, float, TrainedRouter | None]] = {}
        self._lock = asyncio.Lock()

    def get(self, path: Path) -> TrainedRouter | None:
        """The router in ``path``, or None when there is none (yet); a bad file is logged and ignored."""
        now = time.monotonic()
        seen = self._loaded.get(path)
        if seen is not None and now - seen[1] < RELOAD_EVERY_S:
            return seen[2]
        try:
            mtime = path.stat().st_mtime
        except OSError:
            self._loaded[path] = (0.0, now, None)
            return None
        if seen is not None and seen[0] == mtime:
            self._loaded[path] = (mtime, now, seen[2])
            return seen[2]
        try:
            router: TrainedRouter | None = TrainedRouter.load(path)
        except ConfigError as exc:
            log.warning("%s", exc)
            router = None
        self._loaded[path] = (mtime, now, router)
        return router

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self._embed is None:
            async with self._lock:
                if self._embed is None:
                    self._embed = await asyncio.to_thread(_minilm)
        assert self._embed is not None
        return await self._embed(texts)


def _minilm() -> Embed:
    """all-MiniLM-L6-v2 on the CPU behind a batcher (loaded in a thread: it takes a second or two)."""
    import torch

    from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder, minilm_dir

    batcher = EmbeddingBatcher(SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu")))

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _ = await batcher.embed(texts)
        return vectors

    return embed


class LearnedStrategy:
    """Sends each request to the cheapest target its trained router predicts suffices.

    >>> LearnedStrategy(LearnedRouters()).name
    'learned'
    """

    name = "learned"

    def __init__(self, routers: LearnedRouters) -> None:
        self.routers = routers

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        return list(targets)

    def stream_mode(self, route: RouteState) -> Literal["buffer", "refuse"]:
        return "buffer"

    def prepare(self, route: RouteState) -> None:
        path = router_path(self.routers.data_dir, route.name, route.config.learned)
        router = self.routers.get(path)
        if router is None:
            log.warning("route %r has no trained router at %s yet: its last target answers first", route.name, path)
        elif router.targets != [t.id for t in route.targets]:
            log.warning("the router of %r was trained for targets %s: train it again", route.name, router.targets)

    async def serve(self, ctx: RequestContext, route: RouteState, targets: list[TargetState], call: TierCall) -> Any:
        config = route.config.learned or LearnedRouterConfig()
        decision = RoutingDecision(self.name)
        tier_of = {t.id: i for i, t in enumerate(route.targets)}
        router = self.routers.get(router_path(self.routers.data_dir, route.name, config))
        if router is None:
            chosen, why = route.targets[-1], "untrained: the last target answers until `lmdeck routers train` has run"
        else:
            [vector] = await self.routers.embed([request_text(ctx.body)])
            suffices = router.suffices(vector, len(route.targets))
            tier = next(i for i, p in enumerate(suffices) if p >= config.threshold)
            chosen = route.targets[tier]
            decision.extra["p_suffices"] = [round(p, 4) for p in suffices]
            why = f"predicted: P(tier <= {tier} suffices) = {suffices[tier]:.3f} >= {config.threshold}"
        ordered = ([chosen] if chosen in targets else []) + [t for t in targets if t is not chosen]
        last_error: UpstreamError | APIError | None = None
        for position, target in enumerate(ordered):
            try:
                answer = await call(target, ctx.body)
            except (UpstreamError, APIError) as exc:
                last_error = exc
                decision.note(target, "failed", f"{getattr(exc, 'status', '')} {exc}".strip())
                continue
            reason = why if position == 0 and target is chosen else f"failover: {decision.tiers[-1]['reason']}"
            decision.note(target, "answered", reason)
            decision.record(ctx, target, tier_of.get(target.id), reason)
            return answer
        decision.record(ctx, None, None, "every target failed")
        assert last_error is not None
        raise last_error
