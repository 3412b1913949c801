"""Calling models through the gateway's own pipeline, in-process, as an eval run or a judge does.

Requests go through every step a client's request goes through (authentication with
the caller's key, prompts, budgets, tracing), so eval traffic is traced, costed and
limited like any other; its traces carry the ``eval`` tag and the run id::

    inference = PipelineInference(gateway.pipeline, token, tags=["eval", "eval:run:run_123"])
    reply = await inference.chat({"model": "demo", "messages": [{"role": "user", "content": "2+2"}]})
    reply.text, reply.trace_id, reply.latency_ms

A caller whose identity is already known (a console user, signed in with a key whose secret the
console never holds) passes its ``principal`` instead of a token: the authenticate step checks that
principal's model and tag rules as it checks an API key's, and the request is limited, budgeted,
guarded, traced and billed as that key's; with ``after_response=True`` the hooks the serving runs
once a client has its answer (a shadow release's mirror) run too, so it is handled exactly like the
same request sent to ``/v1``::

    PipelineInference(gateway.pipeline, None, principal=user.principal, tags=(), after_response=True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from lmdeck.cache.step import CACHE_HEADER
from lmdeck.evaluation.base import ChatReply
from lmdeck.gateway.routing.override import ROUTE_OVERRIDE
from lmdeck.gateway.routing.state import RouteState
from lmdeck.gateway.serving import run_after_response
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.context import Completed, Kind, RequestContext, Slot
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionRequest, EmbeddingRequest
from lmdeck.protocol.traces import TraceRecord

#: The tag every trace caused by evaluation carries (runs, judges, online scoring).
EVAL_TAG = "eval"
#: A registry model version (``name@version``) to serve in place of the route's alias.
MODEL_OVERRIDE: Slot[str] = Slot("evaluation.model")


def reply_text(response: Any) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = choices[0].message if hasattr(choices[0], "message") else choices[0].get("message", {})
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def is_eval_trace(record: TraceRecord) -> bool:
    return EVAL_TAG in record.tags or any(t.startswith(EVAL_TAG + ":") for t in record.tags)


class PipelineInference:
    """An :class:`~lmdeck.evaluation.base.InferenceClient` that runs requests through the pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        token: str | None,
        *,
        tags: Sequence[str] = (EVAL_TAG,),
        metadata: Mapping[str, Any] | None = None,
        model_override: str | None = None,
        principal: Principal | None = None,
        request_prefix: str = "req_eval_",
        after_response: bool = False,
        route_override: RouteState | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.token = token
        self.principal = principal
        self.request_prefix = request_prefix
        self.after_response = after_response
        self.tags = list(tags)
        self.metadata = dict(metadata or {})
        self.model_override = model_override
        #: Targets that serve every request in place of its route's (an unregistered model version).
        self.route_override = route_override

    def _context(self, kind: Kind, body: Any, tags: Sequence[str]) -> RequestContext:
        request_id = self.request_prefix + os.urandom(10).hex()
        trace = TraceRecord(
            request_id=request_id,
            span_id=os.urandom(8).hex(),
            kind=kind,
            tags=[*self.tags, *(t for t in tags if t not in self.tags)],
            metadata=dict(self.metadata),
            user=getattr(body, "user", None),
        )
        ctx = RequestContext(
            kind=kind,
            body=body,
            request_id=request_id,
            trace=trace,
            route_name=body.model,
            client_token=self.token,
            principal=self.principal,
        )
        if self.model_override:
            ctx.slots.put(MODEL_OVERRIDE, self.model_override)
        if self.route_override is not None:
            ctx.slots.put(ROUTE_OVERRIDE, self.route_override)
            # A route's cache holds what its own targets answered, not what the override's would.
            ctx.headers = {**ctx.headers, CACHE_HEADER: "bypass"}
        return ctx

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply:
        try:
            request = ChatCompletionRequest.model_validate({**body, "stream": False})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise APIError(400, f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
        ctx = self._context("chat", request, tags)
        result = await self.pipeline.run(ctx)
        if not isinstance(result, Completed):
            raise APIError(500, "a non-streaming request returned a stream")
        if self.after_response:
            await run_after_response(ctx)
        trace = ctx.trace
        return ChatReply(
            text=reply_text(result.response),
            trace_id=trace.id,
            latency_ms=trace.latency_ms or ctx.elapsed_ms(),
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            cost=trace.cost_usd,
        )

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]:
        request = EmbeddingRequest(model=route, input=texts)
        ctx = self._context("embeddings", request, ())
        result = await self.pipeline.run(ctx)
        if not isinstance(result, Completed):
            raise APIError(500, "an embeddings request returned a stream")
        data = sorted(getattr(result.response, "data", []), key=lambda item: item.index)
        vectors = []
        for item in data:
            if not isinstance(item.embedding, list):
                raise APIError(502, f"route {route!r} returned base64 embeddings; evaluators need floats")
            vectors.append([float(x) for x in item.embedding])
        return vectors
