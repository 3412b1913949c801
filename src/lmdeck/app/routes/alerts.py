"""``/api/alerts``: alerts and their history, acknowledgement, rules, channels, silences, apply, test, export.

Reading alerts and rules needs a viewer key; acknowledging needs a developer key, and so does a silence confined to the caller's team (its
matchers name a route the team owns, or the team's ``team_id``); changing rules,
channels and silences, evaluating now, testing a channel and the dead-letter log need the admin role.
The logic is in :class:`lmdeck.monitoring.api.AlertsAPI`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of, runtime_of
from lmdeck.monitoring.api import AlertsAPI
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.alerts import (
    AckRequest,
    AlertRuleSpec,
    AlertsApplyRequest,
    AlertsDeclared,
    ChannelSpec,
    EvaluateRequest,
    SilenceSpec,
    TestNotificationRequest,
)
from lmdeck.protocol.limits import MAX_EPOCH_SECONDS
from lmdeck.registry.catalog import actor_of

router = APIRouter(prefix="/api/alerts", tags=["alerts"], route_class=GuardedRoute)

_STATES = "^(pending|firing|acknowledged|resolved|open)$"


def alerts_api(request: Request) -> AlertsAPI:
    runtime = gateway_of(request).alerts
    if runtime is None:
        raise RuntimeError("this gateway was built without alerting: build it with build_gateway()")
    return AlertsAPI(runtime, runtime_of(request).route_owners.owner)


def _listed(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data}


@router.get("", summary="Alerts, newest first (state: pending, firing, acknowledged, resolved or open)")
async def list_alerts(
    request: Request,
    state: str | None = Query(default=None, pattern=_STATES),
    rule: str | None = Query(default=None, max_length=128),
    since: float | None = Query(default=None, ge=0, le=MAX_EPOCH_SECONDS, description="epoch seconds"),
    limit: int = Query(default=100, ge=1, le=1000),
    who: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return _listed(await alerts_api(request).alerts(state=state, rule=rule, since=since, limit=limit, principal=who))


# -- rules ---------------------------------------------------------------------------------------------


@router.get("/rules", summary="Alert rules, with the last evaluation error of each")
async def list_rules(request: Request, who: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return _listed(await alerts_api(request).rules(who))


@router.get("/rules/{name}", summary="One alert rule")
async def get_rule(name: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return await alerts_api(request).rule(name, who)


@router.put("/rules/{name}", summary="Create or replace an alert rule (audited)")
async def put_rule(
    name: str, body: AlertRuleSpec, request: Request, who: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    if body.name != name:
        raise APIError(400, f"the body names rule {body.name!r}, the path {name!r}: make them agree", param="name")
    return await alerts_api(request).put_rule(body, actor_of(who))


@router.delete("/rules/{name}", status_code=204, summary="Delete an alert rule (audited)")
async def delete_rule(name: str, request: Request, who: Principal = Depends(require("admin"))) -> Response:
    await alerts_api(request).delete_rule(name, actor_of(who))
    return Response(status_code=204)


# -- channels ------------------------------------------------------------------------------------------


@router.get("/channels", summary="Notification channels")
async def list_channels(request: Request, _: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return _listed(await alerts_api(request).channels())


@router.put("/channels/{name}", summary="Create or replace a notification channel (audited)")
async def put_channel(
    name: str, body: ChannelSpec, request: Request, who: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    if body.name != name:
        raise APIError(400, f"the body names channel {body.name!r}, the path {name!r}: make them agree", param="name")
    return await alerts_api(request).put_channel(body, actor_of(who))


@router.delete("/channels/{name}", status_code=204, summary="Delete a notification channel (audited)")
async def delete_channel(name: str, request: Request, who: Principal = Depends(require("admin"))) -> Response:
    await alerts_api(request).delete_channel(name, actor_of(who))
    return Response(status_code=204)


@router.post("/test", summary="Send a test notification to a channel now")
async def test_channel(
    body: TestNotificationRequest, request: Request, _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return await alerts_api(request).test_channel(body.channel)


# -- silences ------------------------------------------------------------------------------------------


@router.get("/silences", summary="Silences (active and future; expired ones too with include_expired)")
async def list_silences(
    request: Request, include_expired: bool = Query(default=False), who: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return _listed(await alerts_api(request).silences(include_expired, who))


@router.post("/silences", status_code=201, summary="Silence matching alerts until ends_at (audited)")
async def add_silence(
    body: SilenceSpec, request: Request, who: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await alerts_api(request).add_silence(body, actor_of(who), who)


@router.delete("/silences/{silence_id}", status_code=204, summary="End a silence now (audited)")
async def expire_silence(silence_id: str, request: Request, who: Principal = Depends(require("developer"))) -> Response:
    await alerts_api(request).expire_silence(silence_id, actor_of(who), who)
    return Response(status_code=204)


# -- apply, evaluate, notifications, export -------------------------------------------------------------


@router.post("/apply", summary="Sync rules, channels and silences to a declared state (lmdeck apply)")
async def apply(
    body: AlertsApplyRequest, request: Request, who: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    declared = AlertsDeclared(rules=body.rules, channels=body.channels, silences=body.silences)
    return await alerts_api(request).apply(declared, dry_run=body.dry_run, prune=body.prune, actor=actor_of(who))


@router.post("/evaluate", summary="Evaluate every rule now and deliver the notifications it produces")
async def evaluate(
    request: Request, body: EvaluateRequest | None = None, _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return await alerts_api(request).evaluate(body.at if body is not None else None)


@router.get("/notifications", summary="Notifications, newest first, with their delivery status")
async def notifications(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return _listed(await alerts_api(request).notifications(limit))


@router.get("/dead-letters", summary="Notifications that ran out of delivery attempts")
async def dead_letters(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return _listed(await alerts_api(request).dead_letters(limit))


@router.post("/dead-letters/{notification_id}/retry", summary="Queue a dead-lettered notification again")
async def retry_dead_letter(
    notification_id: str, request: Request, _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return await alerts_api(request).retry_dead(notification_id)


@router.get("/export/prometheus", summary="Prometheus alerting rules generated from lmdeck's rules (YAML)")
async def export_prometheus(request: Request, who: Principal = Depends(require("viewer"))) -> Response:
    text = await alerts_api(request).export_prometheus(who)
    return Response(content=text, media_type="application/yaml")


@router.get("/export/grafana", summary="The Grafana dashboard lmdeck ships (JSON)")
async def export_grafana(request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return alerts_api(request).export_grafana()


# -- one alert (after the fixed paths above) ------------------------------------------------------------


@router.get("/{alert_id}", summary="One alert with its evidence and history")
async def get_alert(alert_id: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return await alerts_api(request).alert(alert_id, who)


@router.post("/{alert_id}/ack", summary="Acknowledge a firing alert (audited)")
async def acknowledge(
    alert_id: str, request: Request, body: AckRequest | None = None, who: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await alerts_api(request).acknowledge(alert_id, actor_of(who), body.comment if body else "", who)
