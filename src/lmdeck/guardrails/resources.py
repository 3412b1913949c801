"""What the gateway lends its guardrails: embeddings from the bundled model and chat completions on a route.

    resources = gateway_resources(Dispatcher(router), late_pipeline, identity.token)

``embed`` calls the ``embed`` route's targets directly (the local MiniLM, in-process: no
trace and no guardrail of its own, so a guardrail that embeds adds no request of its own);
``complete`` runs a chat request through the whole pipeline (traced, costed, limited like
any call, tagged ``guardrail``, with the in-process token); those requests skip the guardrails themselves, so a
judge's own call is never judged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lmdeck.evaluation.inference import PipelineInference
from lmdeck.guardrails.base import GuardResources
from lmdeck.pipeline.chain import Handler, Pipeline
from lmdeck.pipeline.context import Completed, RequestContext
from lmdeck.protocol import APIError, EmbeddingRequest
from lmdeck.protocol.traces import TraceRecord

#: The tag of the requests guardrails make themselves (a judge's call): they are not guarded again.
GUARDRAIL_TAG = "guardrail"

#: The route whose embeddings guardrails use (the bundled all-MiniLM-L6-v2).
EMBED_ROUTE = "embed"


def gateway_resources(
    terminal: Handler | None, pipeline: Callable[[], Pipeline | None], token: str | None
) -> GuardResources:
    """Resources backed by the gateway.

    ``terminal`` dispatches to the ``embed`` route (None when there is none: no ``embed``
    resource then); ``pipeline()`` is the built pipeline (late-bound: guardrails are built
    before it); ``token`` authenticates the calls ``complete`` makes.
    """

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        request_id = "req_guard_" + os.urandom(8).hex()
        body = EmbeddingRequest(model=EMBED_ROUTE, input=list(texts))
        trace = TraceRecord(request_id=request_id, kind="embeddings", tags=[GUARDRAIL_TAG])
        ctx = RequestContext(kind="embeddings", body=body, request_id=request_id, trace=trace, route_name=EMBED_ROUTE)
        assert terminal is not None
        result = await terminal(ctx)
        if not isinstance(result, Completed):
            raise APIError(500, "an embeddings request returned a stream")
        data = sorted(getattr(result.response, "data", []), key=lambda item: item.index)
        return [[float(x) for x in item.embedding] for item in data]

    async def complete(route: str, messages: Sequence[Mapping[str, Any]]) -> str:
        built = pipeline()
        if built is None:
            raise RuntimeError("the gateway's pipeline is not built yet")
        inference = PipelineInference(built, token, tags=[GUARDRAIL_TAG])
        reply = await inference.chat({"model": route, "messages": [dict(m) for m in messages]})
        return reply.text

    return GuardResources(embed=embed if terminal is not None else None, complete=complete)


def is_guardrail_call(ctx: RequestContext, token: str | None) -> bool:
    """Whether the request is one a guardrail made itself with ``token`` (it is not guarded again).

    The tag alone is not enough: a client may tag its own requests, but not hold the in-process token.
    """
    return token is not None and ctx.client_token == token and GUARDRAIL_TAG in ctx.trace.tags
