"""Sending a mirrored request to the candidate, through the gateway's own pipeline.

The user's request, as it reached the gateway (before prompts were rendered or variants applied),
is rewritten for the candidate by the experiment machinery (:meth:`ExperimentStep.apply`: another
prompt version, route or registry model version), given the candidate's request parameters, and
sent through every step a request goes through (prompts, pinning, pricing, tracing) as the shadow
service principal: its cost is not billed to the user's key or team, and its trace carries the tags
``eval``, ``shadow`` and ``shadow:RELEASE`` and the metadata ``release``, ``release_variant:
candidate`` and ``shadow_of`` (the user's trace id), so analytics tell it apart::

    caller = CandidateCaller(lambda: gateway.pipeline, token)
    reply = await caller.call(target, body, principal)      # ChatReply (text, trace_id, cost in USD)

Raises :class:`CandidateRefused` when the candidate's route is one the user's key may not use (the
user's request never goes where its key could not send it), and whatever the pipeline raises
(``APIError``, ``UpstreamError``) when the candidate call fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lmdeck.evaluation.base import ChatReply
from lmdeck.evaluation.experiments.step import ExperimentStep
from lmdeck.evaluation.inference import EVAL_TAG, PipelineInference
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.context import RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.evaluation import VariantSpec
from lmdeck.protocol.shadow import ShadowSpec
from lmdeck.protocol.traces import TraceRecord

#: The tag of every request the shadow stage sends (candidate calls and judge calls).
SHADOW_TAG = "shadow"
#: Request fields a candidate call never carries: it is answered whole, off the user's connection.
_STREAM_FIELDS = ("stream", "stream_options")


@dataclass(frozen=True)
class ShadowTarget:
    """A release in shadow: the requests it covers and what its candidate changes about them.

    ``route``: the route whose requests are mirrored; ``prompt``/``label``: when set, only requests
    rendering that prompt at that label (no explicit version) are covered, and the candidate's
    ``prompt_version`` replaces it; ``candidate`` is an experiment variant (prompt_version, model
    ``name@version``, route); ``params`` request parameters the candidate sets (temperature, ...).
    """

    release: str
    route: str
    spec: ShadowSpec
    candidate: VariantSpec
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    label: str = "production"

    def covers(self, route: str, body: Any) -> bool:
        """Whether a request for ``route`` with ``body`` is one this release mirrors."""
        if route != self.route:
            return False
        if self.prompt is None:
            return True
        prompt = getattr(body, "prompt", None)
        return (
            isinstance(prompt, dict)
            and prompt.get("name") == self.prompt
            and prompt.get("version") is None
            and (prompt.get("label") or "production") == self.label
        )


class CandidateRefused(Exception):
    """The candidate cannot take this request (its route is closed to the user's key)."""


def candidate_body(target: ShadowTarget, body: dict[str, Any], principal: Principal | None) -> dict[str, Any]:
    """The user's request ``body`` rewritten for the candidate (a whole answer, never a stream).

    Raises :class:`CandidateRefused` when the candidate's route is refused to ``principal``.
    """
    plain = {k: v for k, v in body.items() if k not in _STREAM_FIELDS}
    request = ChatCompletionRequest.model_validate(plain)
    probe = RequestContext(
        kind="chat",
        body=request,
        request_id="",
        trace=TraceRecord(),
        principal=principal,
        route_name=request.model,
    )
    prompt = request.prompt if isinstance(request.prompt, dict) else None
    if not ExperimentStep(lambda: []).apply(probe, target.candidate, prompt):
        raise CandidateRefused(f"the key may not use the candidate's route {target.candidate.route!r}")
    out: dict[str, Any] = probe.body.model_dump(exclude_none=True)
    out.update(target.params)
    return out


class CandidateCaller:
    """Calls candidates through the pipeline as the shadow service (module docs)."""

    def __init__(self, pipeline: Callable[[], Pipeline], token: Callable[[], str | None]) -> None:
        self.pipeline = pipeline
        self.token = token

    async def call(
        self, target: ShadowTarget, body: dict[str, Any], principal: Principal | None, baseline_trace_id: str
    ) -> ChatReply:
        request = candidate_body(target, body, principal)
        inference = PipelineInference(
            self.pipeline(),
            self.token(),
            tags=[EVAL_TAG, SHADOW_TAG, f"{SHADOW_TAG}:{target.release}"],
            metadata={"release": target.release, "release_variant": "candidate", "shadow_of": baseline_trace_id},
            model_override=target.candidate.model,
        )
        return await inference.chat(request)

    def judge_client(self) -> PipelineInference:
        """The client judges call models with (traced with the ``shadow`` and ``eval`` tags)."""
        return PipelineInference(self.pipeline(), self.token(), tags=[EVAL_TAG, SHADOW_TAG, f"{SHADOW_TAG}:judge"])


def new_pair_id() -> str:
    return "shp_" + os.urandom(12).hex()
