"""The semantic cache step (phase ``cache``, after ``cache-exact``): a request that means the same
as a cached one, in the same shape, gets the cached answer.

It runs only where the exact step left a decision (:data:`~lmdeck.cache.step.CACHE_REQUEST`) and
the route sets ``cache.semantic.enabled``, for chat requests, and only after an exact miss. The
request is split by :func:`~lmdeck.cache.keys.semantic_parts` into its *shape* (tenant scope,
bundle hash, route, system prompt, tools, response_format, sampling parameters, earlier assistant
turns: everything but the user turns' text) and the user text. The text is embedded with the
bundled MiniLM on the embedding batcher's thread; the store searches the shape's partition only,
so another team, another prompt version or a request with other tools is never matched. A
candidate at least ``cache.semantic.threshold`` similar (cosine) is served when it also passes
``verify_threshold`` (a stricter similarity, when set) and the term check (``verify_terms``:
same numbers, negations and content words, :mod:`lmdeck.cache.semantic.verify`).

A hit is traced like an exact one (:meth:`~lmdeck.cache.step.ExactCache.hit`) with
``cache="semantic"`` and the source trace. ``refresh`` skips the lookup and keeps the answer;
``only-if-cached`` answers 504 when neither cache has one; ``bypass`` and uncacheable requests
never reach this step's lookup. A miss keeps the upstream's whole answer under its shape and
embedding::

    step = SemanticCache(exact_step, store, embedder)
    StepDeclaration(step, "cache", after=("cache-exact",))
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.keys import semantic_parts
from lmdeck.cache.semantic.store import SemanticStore
from lmdeck.cache.semantic.verify import TermVerifier
from lmdeck.cache.step import CACHE_REQUEST, ExactCache, miss_error
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.settings import SemanticCacheConfig

__all__ = ["Embed", "SemanticCache"]

log = logging.getLogger(__name__)

#: Embeds texts off the event loop: their unit vectors (and token counts).
Embed = Callable[[list[str]], Awaitable[tuple[list[list[float]], list[int]]]]


class SemanticCache:
    """The ``cache-semantic`` step (see the module docstring)."""

    name = "cache-semantic"

    def __init__(
        self, exact: ExactCache, store: SemanticStore, embed: Embed, verifier: TermVerifier | None = None
    ) -> None:
        self.exact = exact
        self.store = store
        self.embed = embed
        self.verifier = verifier or TermVerifier()

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        decision = ctx.slots.get(CACHE_REQUEST)
        if (
            decision is None
            or not decision.config.semantic.enabled
            or decision.mode == "bypass"
            or not decision.cacheable
        ):
            return await call_next(ctx)
        only_cached = decision.mode == "only-if-cached"
        shape, text = ("", "")
        if ctx.kind == "chat":
            shape, text = semantic_parts(
                ctx.kind, ctx.route_name, ctx.body, ctx.trace.bundle_hash, decision.scope, decision.vary
            )
        if not text.strip():  # not a chat request, or no user text to compare
            if only_cached:
                raise miss_error("nothing stored under its key")
            return await call_next(ctx)
        try:
            vectors, _ = await self.embed([text])
        except Exception:  # the encoder failed to load or run: answer without the semantic cache
            log.exception("semantic cache: embedding the request failed; asking the upstream")
            if only_cached:
                raise miss_error("nothing stored under its key; the semantic lookup failed") from None
            return await call_next(ctx)
        vector = vectors[0]
        if decision.mode != "refresh":
            found = await self.lookup(shape, text, vector, decision.config.semantic)
            if found is not None:
                return self.exact.hit(ctx, found, "semantic")
            if only_cached:
                raise miss_error("no stored answer under its key nor one close enough in meaning")

        async def put(entry: CacheEntry) -> None:  # the exact step keeps it in its own store too
            await self.store.put(entry, shape, text, vector)

        result = await call_next(ctx)
        return await self.exact.keep(ctx, decision, result, put)

    async def lookup(
        self, shape: str, text: str, vector: list[float], config: SemanticCacheConfig
    ) -> CacheEntry | None:
        """The best stored entry of ``shape`` that passes the threshold and the verifiers, or None."""
        for candidate in await self.store.search(shape, vector, config.threshold):
            if config.verify_threshold is not None and candidate.similarity < config.verify_threshold:
                continue
            if config.verify_terms and not self.verifier(text, candidate.text):
                log.debug("semantic cache: %r vs %r refused by the term check", text, candidate.text)
                continue
            return candidate.entry
        return None
