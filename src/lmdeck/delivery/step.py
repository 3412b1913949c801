"""The ``release`` pipeline step: the canary split of a live release.

It runs in phase ``resolve``, after ``experiment`` (a request inside an experiment stays there)
and before ``prompt``. For a request a serving release covers (one rendering the release's
``prompt`` at its ``label`` without an explicit version, or, for a release without a prompt,
one sent to its ``route``), the subject (user or conversation, like experiments) is hashed with
the release's name into a point of [0, 1); below the current step's share it is served the
candidate, else the baseline. The point does not change between steps, so a subject moved to
the candidate stays there as the share grows.

The candidate is applied with the experiment machinery (a prompt version in the ``prompt``
reference, another route, a registry model version pinned by ``experiment-pin``), then its
``params`` override the request's. The trace is stamped with ``metadata["release"]``,
``["variant"]`` (``baseline`` | ``candidate``: the rollups' ``variant`` dimension) and
``["release_step"]``, and the response carries ``x-lmdeck-release: NAME=VARIANT``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmdeck.delivery.store import ReleaseRecord
from lmdeck.evaluation.experiments.assignment import unit_point
from lmdeck.evaluation.experiments.step import ExperimentStep, subject_of
from lmdeck.evaluation.inference import EVAL_TAG
from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.evaluation import VariantSpec
from lmdeck.providers.base import UpstreamError

RELEASE_HEADER = "x-lmdeck-release"
#: Requests carrying this tag (mirrors of the shadow stage) are never split again.
SHADOW_TAG = "shadow"


def candidate_point(release: str, subject: str) -> float:
    """The subject's point in [0, 1): the candidate serves it while the step's share exceeds it."""
    return unit_point(f"release:{release}", subject)


def _renders(prompt: Any, name: str, label: str) -> bool:
    """Does the request's prompt reference render ``name`` at ``label`` (an exact version is outside)?"""
    if not isinstance(prompt, dict) or prompt.get("name") != name or prompt.get("version") is not None:
        return False
    return (prompt.get("label") or "production") == label


class ReleaseStep:
    """Splits covered requests between a serving release's baseline and candidate."""

    name = "release"

    def __init__(self, serving: Callable[[], list[ReleaseRecord]], eligible: RouteCheck = route_refusal) -> None:
        self.serving = serving
        self.applier = ExperimentStep(list, eligible)

    def covering(self, ctx: RequestContext) -> tuple[ReleaseRecord, dict[str, Any] | None] | None:
        body = ctx.body
        prompt = body.prompt if isinstance(body, ChatCompletionRequest) else None
        for record in self.serving():
            spec = record.spec
            if spec.prompt is not None:
                if _renders(prompt, spec.prompt, spec.label):
                    return record, prompt
            elif ctx.route_name == spec.route:
                return record, prompt
        return None

    def apply(self, ctx: RequestContext, record: ReleaseRecord, prompt: dict[str, Any] | None) -> bool:
        """Make the request the candidate's; False (request untouched) when the candidate's route refuses it."""
        candidate = record.spec.candidate
        variant = VariantSpec(
            name="candidate",
            weight=1,
            prompt_version=candidate.prompt_version,
            model=candidate.model,
            route=candidate.route,
        )
        if not self.applier.apply(ctx, variant, prompt):
            return False
        if candidate.params:
            ctx.body = ctx.body.model_copy(update=candidate.params)
        return True

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        tags = ctx.trace.tags
        if EVAL_TAG in tags or SHADOW_TAG in tags or "experiment" in ctx.trace.metadata:
            return await call_next(ctx)
        found = self.covering(ctx)
        if found is None:
            return await call_next(ctx)
        record, prompt = found
        subject = subject_of(ctx, record.spec)
        point = candidate_point(record.name, subject or ctx.request_id or ctx.trace.id)
        variant = "baseline"
        if point * 100.0 < record.percent and self.apply(ctx, record, prompt):
            variant = "candidate"
        ctx.trace.metadata["release"] = record.name
        ctx.trace.metadata["variant"] = variant
        ctx.trace.metadata["release_step"] = record.step if record.step is not None else -1
        stamp = f"{record.name}={variant}"
        try:
            result = await call_next(ctx)
        except (APIError, UpstreamError) as exc:  # an error answer names the variant that gave it too
            error = upstream_to_api_error(exc) if isinstance(exc, UpstreamError) else exc
            error.headers = {**error.headers, RELEASE_HEADER: stamp}
            if error is exc:
                raise
            raise error from exc
        result.headers[RELEASE_HEADER] = stamp
        return result
