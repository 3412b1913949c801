"""The guardrails' pipeline steps, declared by phase (see :mod:`lmdeck.pipeline.order`).

``unmask`` (``edge``) restores masked values in the answer, outside the trace; ``guard_input``
(``guard_input``) checks the request and applies the data policy; ``guard_output``
(``guard_output``) checks the answer, streams included.
"""

from __future__ import annotations

from lmdeck.guardrails.data_policy import Fallbacks, RouteCheck
from lmdeck.guardrails.service import GuardrailService
from lmdeck.guardrails.steps.input import GuardInput
from lmdeck.guardrails.steps.output import GuardOutput
from lmdeck.guardrails.steps.restore import RestoreMasked
from lmdeck.pipeline.order import StepDeclaration


def steps(service: GuardrailService, route_check: RouteCheck, fallbacks: Fallbacks) -> list[StepDeclaration]:
    """``unmask``, ``guard_input`` and ``guard_output``; ``route_check`` tells whether a route can serve a request."""
    return [
        StepDeclaration(RestoreMasked(), "edge"),
        StepDeclaration(GuardInput(service, route_check, fallbacks), "guard_input"),
        StepDeclaration(GuardOutput(service), "guard_output"),
    ]
