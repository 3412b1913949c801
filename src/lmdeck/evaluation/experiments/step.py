"""The ``experiment`` pipeline steps: assign a variant, then make the request use it.

``experiment`` runs in phase ``resolve``, before ``prompt``: it finds the running experiment that
covers the request (by route, or by the prompt it renders), picks the subject's variant
by hash and rewrites the request: a prompt version in the ``prompt`` reference, another
route, or a registry model version to serve in place of the route's alias. It stamps
``trace.metadata["experiment"]`` / ``["variant"]`` and answers with an
``x-lmdeck-experiment: NAME=VARIANT`` header.

``experiment-pin`` runs after ``prompt`` (before ``bundle``): for a model variant it
hands the bundle step a registry view in which the route's alias points at the
variant's version, so the registry provider serves it and the bundle hash names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, Protocol

from lmdeck.evaluation.experiments.assignment import assign
from lmdeck.evaluation.inference import EVAL_TAG, MODEL_OVERRIDE
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.evaluation import ExperimentSpec, VariantSpec
from lmdeck.registry.prompt_step import SNAPSHOT
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot

EXPERIMENT_HEADER = "x-lmdeck-experiment"
CONVERSATION_HEADER = "x-lmdeck-conversation-id"


class Sticky(Protocol):
    """What assignment sticks to (an experiment's or a release's ``sticky``)."""

    @property
    def sticky(self) -> Literal["user", "conversation"]: ...


def subject_of(ctx: RequestContext, spec: Sticky) -> str | None:
    """Who the assignment sticks to: the conversation or the user; None when the request names neither."""
    body = ctx.body
    if spec.sticky == "conversation":
        metadata = getattr(body, "metadata", None) or {}
        conversation = metadata.get("conversation_id") if isinstance(metadata, dict) else None
        conversation = conversation or ctx.headers.get(CONVERSATION_HEADER)
        if conversation:
            return f"conversation:{conversation}"
    user = getattr(body, "user", None) or (ctx.principal.user_id if ctx.principal else None) or ctx.trace.user
    return f"user:{user}" if user else None


class ExperimentStep:
    """Assigns requests covered by a running experiment to a variant and applies it."""

    name = "experiment"

    def __init__(self, running: Callable[[], list[ExperimentSpec]], eligible: RouteCheck = route_refusal) -> None:
        self.running = running
        self.eligible = eligible

    def covering(self, ctx: RequestContext) -> tuple[ExperimentSpec, dict[str, Any] | None] | None:
        body = ctx.body
        prompt = body.prompt if isinstance(body, ChatCompletionRequest) else None
        for spec in self.running():
            if spec.prompt is not None and isinstance(prompt, dict) and prompt.get("name") == spec.prompt:
                # A caller asking for an exact version is outside the experiment.
                if prompt.get("version") is None and (prompt.get("label") or "production") == spec.label:
                    return spec, prompt
            elif spec.route is not None and ctx.route_name == spec.route:
                return spec, prompt
        return None

    def apply(self, ctx: RequestContext, variant: VariantSpec, prompt: dict[str, Any] | None) -> bool:
        body = ctx.body
        updates: dict[str, Any] = {}
        if variant.route is not None:
            # A variant the request cannot go to (the key's allow-list, the route's capabilities)
            # leaves the request with the control.
            if self.eligible(ctx, variant.route) is not None:
                return False
            updates["model"] = variant.route
            ctx.route_name = variant.route
        if variant.prompt_version is not None and prompt is not None:
            updates["prompt"] = {
                **{k: v for k, v in prompt.items() if k != "label"},
                "version": variant.prompt_version,
            }
        if updates:
            ctx.body = body.model_copy(update=updates)
        if variant.model is not None:
            ctx.slots.put(MODEL_OVERRIDE, variant.model)
        return True

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        if EVAL_TAG in ctx.trace.tags:
            return await call_next(ctx)
        found = self.covering(ctx)
        if found is None:
            return await call_next(ctx)
        spec, prompt = found
        subject = subject_of(ctx, spec)
        variant = assign(spec.name, subject or ctx.request_id or ctx.trace.id, spec.variants)
        if not self.apply(ctx, variant, prompt):
            variant = spec.control
        ctx.trace.metadata["experiment"] = spec.name
        ctx.trace.metadata["variant"] = variant.name
        if subject is not None:
            ctx.trace.metadata["experiment_subject"] = subject
        result = await call_next(ctx)
        result.headers[EXPERIMENT_HEADER] = f"{spec.name}={variant.name}"
        return result


class ModelOverlays:
    """Registry views with one model's aliases pointed at another version, cached per snapshot."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], RegistrySnapshot] = {}
        self._revision: int | None = None

    def view(self, snapshot: RegistrySnapshot, ref: str) -> RegistrySnapshot:
        if snapshot.revision != self._revision:
            self._cache.clear()
            self._revision = snapshot.revision
        key = (id(snapshot), ref)
        found = self._cache.get(key)
        if found is None:
            version = snapshot.model(ref)  # a 404 naming the fix when it does not resolve
            name = ModelRef.parse(ref).name
            aliases = {k: (version.version if k[0] == name else v) for k, v in snapshot.model_aliases.items()}
            latest = {**snapshot.latest, ("model", name): version.version}
            found = dataclasses.replace(snapshot, model_aliases=aliases, latest=latest, bundles={})
            self._cache[key] = found
        return found


class ExperimentPin:
    """Serves a model variant (or an eval run's ``--model``) through the route's registry alias."""

    name = "experiment-pin"

    def __init__(self, live_snapshot: Callable[[], RegistrySnapshot]) -> None:
        self.live_snapshot = live_snapshot
        self.overlays = ModelOverlays()

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        ref = ctx.slots.get(MODEL_OVERRIDE)
        if ref:
            snapshot = ctx.slots.get(SNAPSHOT) or self.live_snapshot()
            ctx.slots.put(SNAPSHOT, self.overlays.view(snapshot, ref))
        return await call_next(ctx)
