"""What each configured guardrail would do with a text (``lmdeck guardrails test``, ``/api/guardrails/test``).

    report = await trial(runtime, GuardrailTestRequest(text="mail bob@example.com", route="support"))
    report["results"][0]   # {"guardrail": "pii", "type": "pii", "finding": "mask", "action": "mask", ...}

The guardrails are the gateway's own instances, with its models lent; nothing is sent
upstream and nothing is traced. ``masked`` is the text as a ``mask`` action would send it.
"""

from __future__ import annotations

from typing import Any

from lmdeck.guardrails.base import GuardContext, Span
from lmdeck.guardrails.config import Attached, GuardrailConfig
from lmdeck.guardrails.masking import MaskSession
from lmdeck.guardrails.registry import GuardrailRegistry
from lmdeck.guardrails.service import Checked, GuardrailService, action_for, verdict_entry
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.guardrails import GuardrailSettings, GuardrailTestRequest, GuardrailUse


async def trial(
    service: GuardrailService, request: GuardrailTestRequest, principal: Principal | None = None
) -> dict[str, Any]:
    """Each guardrail's verdict on the text, and the action the route would take; 404 for an unknown name."""
    config = service.config
    names = request.guardrails if request.guardrails is not None else list(config.instances)
    unknown = [n for n in names if n not in config.instances]
    if unknown:
        defined = ", ".join(sorted(config.instances)) or "none"
        raise APIError(
            404, f"no guardrail named {', '.join(map(repr, unknown))} (defined: {defined})", code="not_found"
        )
    actions: dict[str, Attached] = {}
    if request.route is not None:
        route = service.route_config(request.route)
        if route is None:
            raise APIError(404, f"the model {request.route!r} does not exist", code="model_not_found", param="route")
        plan = config.plan_for(route, principal)
        actions = {a.name: a for a in (plan.input if request.stage == "input" else plan.output)}
    attached = [
        actions.get(n) or Attached(n, config.instances[n], GuardrailUse(use=n, action="flag"))
        for n in names
        if request.stage in config.instances[n].stages
    ]
    # Async ones too: a trial waits for every verdict.
    sync = [
        Attached(a.name, a.guardrail, a.use.model_copy(update={"mode": "sync", "action": "flag"})) for a in attached
    ]
    checked = await service.check(sync, request.text, GuardContext(request.stage, route=request.route or ""))
    results = []
    session = MaskSession()
    masks: list[Span] = []
    for item, original in zip(checked, attached, strict=True):
        real = Checked(original, item.verdict, item.latency_ms, item.error)
        action = action_for(real) if original.name in actions else None
        entry = verdict_entry(real, request.stage, action or "-")
        entry["type"] = config.kinds.get(original.name, "")
        entry["attached"] = original.name in actions
        if action is None:
            entry.pop("action")
        results.append(entry)
        if item.verdict is not None and item.verdict.spans and (action == "mask" or action is None):
            masks.extend(item.verdict.spans)
    return {
        "stage": request.stage,
        "route": request.route,
        "results": results,
        "masked": session.mask(request.text, masks) if masks else None,
    }


def listing(registry: GuardrailRegistry, config: GuardrailConfig, declared: GuardrailSettings) -> dict[str, Any]:
    """The registered guardrail types and the configured definitions (``lmdeck guardrails list``)."""
    types = []
    for name in registry.names():
        info = registry.info(name)
        types.append(
            {
                "name": info.name,
                "description": info.description,
                "cost": info.cost,
                "stages": sorted(info.stages),
                "options": dict(info.options),
            }
        )
    definitions = [
        {
            "name": name,
            "type": definition.type,
            "options": definition.options,
            "cost": config.instances[name].cost if name in config.instances else None,
            "stages": sorted(config.instances[name].stages) if name in config.instances else [],
        }
        for name, definition in declared.definitions.items()
    ]
    unavailable = [{"name": n, "reason": r} for n, r in sorted(registry.unavailable.items())]
    policy = declared.data_policy.model_dump(mode="json") if declared.data_policy is not None else None
    return {"types": types, "unavailable": unavailable, "definitions": definitions, "data_policy": policy}
