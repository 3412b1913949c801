"""How a route reaches the gateway's services: one typed accessor per service.

    @router.get("/api/registry/models")
    async def list_models(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        return {"object": "list", "data": await runtime_of(request).models.entries(principal)}

The gateway is the :class:`~lmdeck.app.assembly.Gateway` that :func:`lmdeck.app.factory.create_app`
put in ``app.state.gateway``; each accessor returns one of its typed fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from lmdeck.app.assembly import Gateway
from lmdeck.delivery.flags.service import FlagService
from lmdeck.delivery.runtime import DeliveryRuntime
from lmdeck.delivery.shadow.runtime import ShadowRuntime
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.finetune.flywheel.service import FlywheelService
from lmdeck.finetune.jobs.service import FineTuningService
from lmdeck.gateway.batches.files import FileStore
from lmdeck.gateway.batches.runner import BatchRunner
from lmdeck.gateway.ingress.responses.serving import ResponsesServing
from lmdeck.guardrails.moderations import ModerationServing
from lmdeck.guardrails.runtime import GuardrailRuntime
from lmdeck.policy.services import PolicyServices
from lmdeck.protocol import APIError
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.tracing.analytics import AnalyticsPool, AnalyticsUnavailable
from lmdeck.tracing.store import TraceStore

T = TypeVar("T")


def gateway_of(request: Request) -> Gateway:
    """The gateway serving ``request``.

    Raises ``RuntimeError`` naming the fix when the app was not made by ``create_app``.
    """
    gateway = getattr(request.app.state, "gateway", None)
    if not isinstance(gateway, Gateway):
        raise RuntimeError("this app has no lmdeck gateway: build it with lmdeck.app.factory.create_app()")
    return gateway


def runtime_of(request: Request) -> RegistryRuntime:
    """The registry (models, prompts, datasets, live snapshot) of the gateway serving ``request``."""
    return gateway_of(request).registry


def policy_of(request: Request) -> PolicyServices:
    """The access control and cost governance (keys, teams, budgets, audit, secrets) of the gateway."""
    return gateway_of(request).policy


def evaluation_of(request: Request) -> EvaluationRuntime:
    """The evaluation (runs, feedback, online rules, experiments) of the gateway serving ``request``."""
    return gateway_of(request).evaluation


def delivery_of(request: Request) -> DeliveryRuntime:
    """The releases (service, controller, events) of the gateway serving ``request``."""
    runtime = gateway_of(request).delivery
    if runtime is None:
        raise RuntimeError("this gateway was built without delivery: build it with build_gateway()")
    return runtime


def flywheel_of(request: Request) -> FlywheelService:
    """The flywheel runs (traces → dataset → fine-tuning job → release) of the gateway serving ``request``."""
    flywheel = gateway_of(request).flywheel
    if flywheel is None:
        raise RuntimeError("this gateway was built without the flywheel: build it with build_gateway()")
    return flywheel


def flags_of(request: Request) -> FlagService:
    """The feature flags (CRUD, history, evaluation) of the gateway serving ``request``."""
    flags = gateway_of(request).flags
    if flags is None:
        raise RuntimeError("this gateway was built without feature flags: build it with build_gateway()")
    return flags.service


def trace_store_of(request: Request) -> TraceStore:
    """Where the gateway serving ``request`` reads its stored traces from."""
    return gateway_of(request).trace_store


def guardrails_of(request: Request) -> GuardrailRuntime:
    """The guardrails (built definitions, their service and types) of the gateway serving ``request``."""
    runtime = gateway_of(request).guardrails
    if runtime is None:
        raise RuntimeError("this gateway was built without guardrails: build it with build_gateway()")
    return runtime


def shadow_of(request: Request) -> ShadowRuntime:
    """The shadow stage of releases (mirrors, judged pairs, verdicts) of the gateway serving ``request``."""
    runtime = gateway_of(request).shadow
    if runtime is None:
        raise RuntimeError("this gateway was built without the shadow stage: build it with build_gateway()")
    return runtime


def responses_of(request: Request) -> ResponsesServing:
    """The Responses API serving (``/v1/responses``) of the gateway serving ``request``."""
    serving = gateway_of(request).responses
    if serving is None:
        raise RuntimeError("this gateway was built without the Responses API: build it with build_gateway()")
    return serving


def files_of(request: Request) -> FileStore:
    """The file store (``/v1/files``) of the gateway serving ``request``."""
    store = gateway_of(request).files
    if store is None:
        raise RuntimeError("this gateway was built without the file store: build it with build_gateway()")
    return store


def batches_of(request: Request) -> BatchRunner:
    """The batch runner (``/v1/batches``) of the gateway serving ``request``."""
    runner = gateway_of(request).batches
    if runner is None:
        raise RuntimeError("this gateway was built without batches: build it with build_gateway()")
    return runner


def moderations_of(request: Request) -> ModerationServing:
    """The moderations serving (``/v1/moderations``) of the gateway serving ``request``."""
    serving = gateway_of(request).moderations
    if serving is None:
        raise RuntimeError("this gateway was built without moderations: build it with build_gateway()")
    return serving


def fine_tuning_of(request: Request) -> FineTuningService:
    """The fine-tuning jobs (``/v1/fine_tuning/jobs``) of the gateway serving ``request``; a 503 when
    the gateway has no registry to read datasets from and register adapters into."""
    runtime = gateway_of(request).finetune
    if runtime is None:
        raise APIError(503, "fine-tuning needs the registry and eval runs", code="fine_tuning_unavailable")
    return runtime.service


def analytics_of(request: Request) -> AnalyticsPool:
    """The analytics pool (``tracing.analytics_*``) of the gateway serving ``request``."""
    return gateway_of(request).analytics


async def analytics(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` in the analytics pool (a module-level function: it may run in another process);
    a 503 in OpenAI's error shape when it times out or the pool is full."""
    try:
        return await analytics_of(request).run(fn, *args)
    except AnalyticsUnavailable as exc:
        raise APIError(503, str(exc), code="analytics_unavailable", headers={"retry-after": "5"}) from None
