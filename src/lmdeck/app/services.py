"""How a route reaches the gateway's services: one typed accessor per service.

    @router.get("/api/registry/models")
    async def list_models(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        return {"object": "list", "data": await runtime_of(request).models.entries(principal)}

The gateway is the :class:`~lmdeck.app.assembly.Gateway` that :func:`lmdeck.app.factory.create_app`
put in ``app.state.gateway``; each accessor returns one of its typed fields.
"""

from __future__ import annotations

from starlette.requests import Request

from lmdeck.app.assembly import Gateway
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.policy.services import PolicyServices
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.tracing.store import TraceStore


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


def trace_store_of(request: Request) -> TraceStore:
    """Where the gateway serving ``request`` reads its stored traces from."""
    return gateway_of(request).trace_store
