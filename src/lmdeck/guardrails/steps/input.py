"""``guard_input`` (phase ``guard_input``): the request's texts checked before anything is paid for.

Each text of the request (every message's text, a completion's prompt, an embedding's inputs)
goes through the request's input guardrails (its route's, its team's, its key's) and the data
policy's restricted guardrails. Then, in this order:

1. a ``block`` finding refuses the request: 400 ``content_policy_violation`` naming the guardrail;
2. the data policy refuses, masks or keeps the request on allowed targets (see
   :mod:`lmdeck.guardrails.data_policy`);
3. a ``fallback`` finding moves the request to the attachment's ``route``;
4. ``mask`` findings are replaced by placeholders (``<EMAIL_ADDRESS_1>``) in the body sent on;
   the ``unmask`` step puts the originals back in the answer.

``flag`` findings and every verdict go on the trace; ``async`` guardrails start beside the
request and flag when they end.

Before anything else, a request with any guardrail (input or output) gets the digest of its
guardrail policy in the cache's vary parts (:data:`~lmdeck.cache.keys.CACHE_VARY`, as
``"guardrails"``): the cache phase runs inside this one and a hit skips ``guard_output``, so an
answer is only shared between requests under the same policy, and a policy change leaves older
entries unreachable.
"""

from __future__ import annotations

from typing import Any

from lmdeck.cache.keys import CACHE_VARY
from lmdeck.guardrails.base import GuardContext, Span
from lmdeck.guardrails.config import Attached
from lmdeck.guardrails.data_policy import (
    DECISION,
    Fallbacks,
    Restriction,
    RouteCheck,
    apply_reroute,
    policy_error,
    restricted_tags,
)
from lmdeck.guardrails.masking import MASKS, MaskSession, redact
from lmdeck.guardrails.resources import is_guardrail_call
from lmdeck.guardrails.service import Checked, GuardrailService, action_for, refuse_unchecked
from lmdeck.guardrails.texts import Where, request_texts, with_request_texts
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.guardrails import GuardrailUse

#: The trace's ``metadata`` key of a guardrail's fallback: ``{"guardrail", "from", "to"}``.
FALLBACK = "guardrail_fallback"
#: The trace's ``metadata`` key of the masked entity types and how many values of each.
MASKED = "masked_entities"


def where_name(where: Where) -> str:
    field, index, part = where
    return f"{field}[{index}]" + (f".content[{part}]" if part is not None else "")


def blocked_error(name: str, reason: str, stage: str = "input") -> APIError:
    what = "request" if stage == "input" else "answer"
    status = 400 if stage == "input" else 422
    return APIError(
        status,
        f"the {what} was blocked by the guardrail {name!r}: {reason or 'content policy'}",
        code="content_policy_violation",
        param="messages" if stage == "input" else None,
    )


class GuardInput:
    """Runs the input guardrails and the data policy on a request (see the module docstring)."""

    name = "guard_input"

    def __init__(self, service: GuardrailService, route_check: RouteCheck, fallbacks: Fallbacks) -> None:
        self.service = service
        self.route_check = route_check
        self.fallbacks = fallbacks

    def _policy_only(self, plan_names: set[str]) -> list[Attached]:
        """The data policy's guardrails not attached to the request, run to find restricted data only."""
        instances = self.service.config.instances
        return [
            Attached(name, instances[name], GuardrailUse(use=name, action="flag"))
            for name in self.service.data_policy_guardrails
            if name not in plan_names
        ]

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        if is_guardrail_call(ctx, self.service.internal_token):
            return await call_next(ctx)
        plan = self.service.plan(ctx)
        if not plan.empty:
            vary = ctx.slots.get(CACHE_VARY) or {}
            ctx.slots.put(CACHE_VARY, {**vary, "guardrails": self.service.config.policy_digest(plan)})
        policy = self.service.config.data_policy
        tags = restricted_tags(policy, getattr(ctx.body, "tags", None)) if policy is not None else []
        extra = self._policy_only({a.name for a in plan.input})
        if not plan.input and not extra and not tags:
            return await call_next(ctx)
        messages: list[dict[str, Any]] = []
        if isinstance(ctx.body, ChatCompletionRequest):
            messages = [m.model_dump(exclude_none=True) for m in ctx.body.messages]
        restricted = set(self.service.data_policy_guardrails)
        restriction = Restriction(tags=tags)
        masks: dict[Where, list[Span]] = {}
        restricted_spans: dict[Where, list[Span]] = {}
        texts: dict[Where, str] = {}
        findings: dict[Where, list[Span]] = {}
        blocked: Checked | None = None
        fallback: Checked | None = None
        for piece in request_texts(ctx.body):
            texts[piece.where] = piece.text
            gctx = GuardContext("input", route=ctx.route_name, role=piece.role, messages=messages)
            checked = await self.service.check([*plan.input, *extra], piece.text, gctx)
            self.service.spawn(plan.input, piece.text, gctx, ctx.trace)
            for item in checked:
                action = action_for(item)
                self.service.record(ctx, item, action, "input", where_name(piece.where))
                refuse_unchecked(item, restricted)
                verdict = item.verdict
                if verdict is None or verdict.passed:
                    continue
                if item.attached.name in restricted:
                    kinds = restriction.guardrails.setdefault(item.attached.name, [])
                    kinds.extend(s.entity for s in verdict.spans if s.entity not in kinds)
                    restricted_spans.setdefault(piece.where, []).extend(verdict.spans)
                findings.setdefault(piece.where, []).extend(verdict.spans)
                if action == "block" and blocked is None:
                    blocked = item
                elif action == "fallback" and fallback is None:
                    fallback = item
                elif action == "mask":
                    masks.setdefault(piece.where, []).extend(verdict.spans)
        if blocked is not None:
            # Nothing is sent; the trace keeps the request with what was found redacted.
            found = {w: [*masks.get(w, []), *spans] for w, spans in findings.items()}
            ctx.body = with_request_texts(ctx.body, {w: redact(texts[w], s) for w, s in found.items()})
            raise blocked_error(blocked.attached.name, blocked.verdict.reason if blocked.verdict else "")
        if restriction and policy is not None:
            if policy.action == "refuse":
                ctx.trace.metadata[DECISION] = {
                    "restricted": sorted(restriction.guardrails),
                    "tags": restriction.tags,
                    "action": "refuse",
                    "reason": f"input holds data restricted by the data policy ({restriction.describe()})",
                }
                raise policy_error(
                    f"this request holds data the data policy does not let leave ({restriction.describe()}): "
                    "remove it from the request"
                )
            if policy.action == "mask":
                for where, spans in restricted_spans.items():
                    masks.setdefault(where, []).extend(spans)
                ctx.trace.metadata[DECISION] = {
                    "restricted": sorted(restriction.guardrails),
                    "tags": restriction.tags,
                    "action": "mask",
                    "reason": f"input holds data restricted by the data policy ({restriction.describe()}); "
                    "masked before sending",
                }
                if restriction.tags and not restriction.guardrails:
                    # A tagged request has nothing to mask: it may only stay in house.
                    ctx.trace.metadata[DECISION] = apply_reroute(
                        ctx, policy, restriction, self.route_check, self.fallbacks
                    )
            else:
                ctx.trace.metadata[DECISION] = apply_reroute(ctx, policy, restriction, self.route_check, self.fallbacks)
        if fallback is not None and fallback.attached.use.route:
            ctx.trace.metadata[FALLBACK] = {
                "guardrail": fallback.attached.name,
                "from": ctx.route_name,
                "to": fallback.attached.use.route,
            }
            ctx.route_name = fallback.attached.use.route
        if masks:
            session = ctx.slots.get(MASKS) or MaskSession()
            masked = {where: session.mask(texts[where], spans) for where, spans in masks.items()}
            ctx.body = with_request_texts(ctx.body, masked)
            ctx.slots.put(MASKS, session)
            ctx.trace.metadata[MASKED] = session.entities
        return await call_next(ctx)
