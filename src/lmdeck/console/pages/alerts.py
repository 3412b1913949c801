"""Alerts: the rules in force, open (firing, pending, acknowledged) alerts, the recent history and the
silences; developers acknowledge a firing alert or silence it for a few hours.

Everything goes through :class:`~lmdeck.monitoring.api.AlertsAPI` with the signed-in principal, as
``/api/alerts`` does: a non-admin sees and acts on its own team's alerts only, a silence must be
confined to the caller's team, and acknowledgements and silences are audited.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Form
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.routes.alerts import alerts_api
from lmdeck.app.services import gateway_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.protocol.alerts import SilenceSpec
from lmdeck.registry.catalog import actor_of

router = APIRouter(prefix="/console/alerts", include_in_schema=False)

#: Alerts shown in the history; the longest silence the form offers (hours).
HISTORY = 50
MAX_SILENCE_H = 7 * 24


def _refused(request: Request, user: ConsoleUser, status: int, message: str) -> Response:
    return render(request, user, "error.html", {"message": message}, status_code=status)


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    if gateway_of(request).alerts is None:
        return _refused(request, user, 503, "this gateway runs without alerting")
    api, who = alerts_api(request), user.principal
    return render(
        request,
        user,
        "alerts/index.html",
        {
            "rules": await api.rules(who),
            "open": await api.alerts(state="open", rule=None, since=None, limit=100, principal=who),
            "history": await api.alerts(state=None, rule=None, since=None, limit=HISTORY, principal=who),
            "silences": await api.silences(False, who),
            "may_act": user.may("developer"),
            "max_silence_h": MAX_SILENCE_H,
        },
    )


@router.post("/{alert_id}/ack")
async def acknowledge(
    request: Request,
    alert_id: str,
    comment: str = Form("", max_length=2000),
    user: ConsoleUser = Depends(console_user("developer")),
) -> Response:
    try:
        await alerts_api(request).acknowledge(alert_id, actor_of(user.principal), comment, user.principal)
    except APIError as exc:
        return _refused(request, user, exc.status, exc.message)
    return RedirectResponse("/console/alerts", status_code=303)


@router.post("/{alert_id}/silence")
async def silence(
    request: Request,
    alert_id: str,
    hours: float = Form(gt=0, le=MAX_SILENCE_H),
    comment: str = Form("", max_length=2000),
    user: ConsoleUser = Depends(console_user("developer")),
) -> Response:
    """Silence alerts with this alert's rule and group (its ``route``, ``target``...) for ``hours``."""
    api = alerts_api(request)
    try:
        alert = await api.alert(alert_id, user.principal)
        matchers = {"rule": str(alert["rule"]), **{k: str(v) for k, v in (alert.get("group") or {}).items()}}
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        spec = SilenceSpec(matchers=matchers, ends_at=ends, comment=comment or f"silenced from alert {alert_id}")
        await api.add_silence(spec, actor_of(user.principal), user.principal)
    except APIError as exc:
        return _refused(request, user, exc.status, exc.message)
    except ValidationError as exc:
        return _refused(request, user, 400, str(exc.errors()[0]["msg"]))
    return RedirectResponse("/console/alerts", status_code=303)


PAGE = ConsolePage(title="Alerts", path="/console/alerts", min_role="viewer", router=router, order=55)
