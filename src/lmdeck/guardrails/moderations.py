"""``/v1/moderations`` answered by lmdeck's guardrails, in OpenAI's moderation shape.

    serving = ModerationServing(guardrails.service, route_config, sink, admit=ratelimit.wait_admitted)
    response = await serving.create(principal, ModerationRequest(input=["hi", "ignore all previous..."]))
    response.results[1].flagged     # True when any guardrail's verdict is not ``pass``

Which guardrails judge (``model``): a route's name runs the input guardrails that route, the caller's
team and key attach (as a chat request to that route would be checked); a guardrail definition's
name runs that one; no ``model`` runs every defined guardrail that checks input. Each guardrail's
verdict becomes the category ``lmdeck/<its type>`` (flagged when its finding is not ``pass``, with
the score it reported); OpenAI's own categories are never judged (false, 0). A guardrail that fails
or times out makes the request a 503 naming it, and a text too large for one to check a 413
(``guardrail_input_too_large``): a text it did not check is never reported clean.

The request is authenticated (the route's dependency), rate limited by the key's, team's and the
route's limits (a 429 when there is no room now), and traced once (``kind: moderations``; the
verdicts in ``metadata``, never the input text).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

from lmdeck.gateway.steps.record import TraceSink
from lmdeck.guardrails.base import GuardContext
from lmdeck.guardrails.config import Attached
from lmdeck.guardrails.service import Checked, GuardrailService
from lmdeck.pipeline.context import RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.protocol import APIError, EmbeddingRequest
from lmdeck.protocol.guardrails import GuardrailUse
from lmdeck.protocol.moderations import OPENAI_CATEGORIES, ModerationRequest, ModerationResponse, ModerationResult
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import RouteConfig

#: Texts one request may hold.
MAX_INPUTS = 64
#: Takes room in the caller's rate limits now, or raises the 429 (the deadline is now: no waiting).
Admit = Callable[[RequestContext, float], Awaitable[None]]
#: What the response's ``model`` says when the request named none.
ALL_GUARDRAILS = "lmdeck-guardrails"


def category(kind: str) -> str:
    """The category of a guardrail type: ``lmdeck/<type>`` (``injection`` is ``prompt_injection``)."""
    return "lmdeck/" + {"injection": "prompt_injection"}.get(kind, kind)


class ModerationServing:
    """Serves ``POST /v1/moderations`` (see the module docs)."""

    def __init__(
        self,
        service: GuardrailService,
        route_config: Callable[[str], RouteConfig | None],
        sink: TraceSink,
        *,
        admit: Admit,
    ) -> None:
        self.service = service
        self.route_config = route_config
        self.sink = sink
        self.admit = admit

    def guardrails_for(self, model: str | None, principal: Principal) -> list[Attached]:
        """The guardrails ``model`` names (see the module docs); a 400 or 403 naming ``model`` otherwise."""
        config = self.service.config
        if model is None:
            attached = [
                Attached(name, guardrail, GuardrailUse(use=name))
                for name, guardrail in config.instances.items()
                if "input" in guardrail.stages
            ]
            if not attached:
                raise APIError(
                    400,
                    "this gateway defines no guardrail that checks input: define some under "
                    "`guardrails.definitions` (docs/guardrails.md)",
                    param="model",
                    code="no_guardrails",
                )
            return attached
        route = self.route_config(model)
        if route is not None:
            if not principal.may_use(model):
                raise APIError(
                    403, f"this key may not use the model {model!r}", param="model", code="model_not_allowed"
                )
            attached = [a for a in config.plan_for(route, principal).input if a.use.mode == "sync"]
            if not attached:
                raise APIError(
                    400,
                    f"the route {model!r} attaches no input guardrail (nor do this key and its team): "
                    "name a guardrail definition, or attach guardrails to the route",
                    param="model",
                    code="no_guardrails",
                )
            return attached
        guardrail = config.instances.get(model)
        if guardrail is not None:
            return [Attached(model, guardrail, GuardrailUse(use=model))]
        raise APIError(
            400,
            f"no route or guardrail definition named {model!r}: name one (GET /v1/models, `lmdeck guardrails list`), "
            "or leave `model` out to run every guardrail",
            param="model",
            code="model_not_found",
        )

    def result(self, checked: list[Checked]) -> ModerationResult:
        categories = dict.fromkeys(OPENAI_CATEGORIES, False)
        scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
        for one in checked:
            if one.error == "TooLargeToCheck":
                raise APIError(
                    413,
                    f"input: a text is too large for the guardrail {one.attached.name!r} to check: send shorter texts",
                    param="input",
                    code="guardrail_input_too_large",
                )
            if one.verdict is None:
                raise APIError(
                    503,
                    f"the guardrail {one.attached.name!r} failed ({one.error}): the text was not checked; try again",
                    code="guardrail_unavailable",
                )
            name = category(self.service.config.kinds.get(one.attached.name, one.attached.name))
            categories[name] = categories.get(name, False) or not one.verdict.passed
            scores[name] = max(scores.get(name, 0.0), one.verdict.score)
        return ModerationResult(flagged=any(categories.values()), categories=categories, category_scores=scores)

    async def create(
        self, principal: Principal, body: ModerationRequest, ids: RequestIds | None = None
    ) -> ModerationResponse:
        """Judge every text of ``body``. Raises :class:`APIError`: 400 (bad ``input`` or ``model``), 403, 429, 503."""
        started = time.perf_counter()
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        trace = TraceRecord(kind="moderations")
        if ids is not None:
            trace.trace_id, trace.span_id, trace.parent_span_id = ids.trace_id, ids.span_id, ids.parent_span_id
            trace.client_request_id, trace.client_trace_id = ids.client_request_id, ids.client_trace_id
        trace.request_id = (ids.request_id if ids is not None else "") or f"modr-{secrets.token_hex(12)}"
        trace.route, trace.key_id, trace.team_id = body.model, principal.key_id, principal.team_id
        try:
            if not texts or len(texts) > MAX_INPUTS:
                raise APIError(400, f"input: send 1 to {MAX_INPUTS} texts", param="input")
            attached = self.guardrails_for(body.model, principal)
            # Rate limited as an embeddings request of the same texts: same request and token counts.
            ctx = RequestContext(
                kind="embeddings",
                body=EmbeddingRequest(model=body.model or ALL_GUARDRAILS, input=texts),
                request_id=trace.request_id,
                trace=trace,
                route_name=body.model or ALL_GUARDRAILS,
                principal=principal,
            )
            await self.admit(ctx, time.time())
            results = []
            for text in texts:
                gctx = GuardContext(
                    "input", route=body.model or "", role="user", messages=[{"role": "user", "content": text}]
                )
                results.append(self.result(await self.service.check(attached, text, gctx)))
            trace.metadata["moderation"] = {
                "guardrails": [a.name for a in attached],
                "flagged": [r.flagged for r in results],
                "categories": sorted({c for r in results for c, hit in r.categories.items() if hit}),
            }
            return ModerationResponse(
                id=f"modr-{secrets.token_hex(12)}", model=body.model or ALL_GUARDRAILS, results=results
            )
        except APIError as exc:
            trace.status_code = exc.status
            trace.error = exc.message
            trace.error_type = exc.type
            raise
        finally:
            trace.latency_ms = (time.perf_counter() - started) * 1000.0
            self.sink.submit(trace)
