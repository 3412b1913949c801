"""Keys (admins): every key without its secret, and a form that creates one and shows the new key once.
The same service calls as ``/api/keys`` (``policy.access``), with the signed-in admin as the actor."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.services import policy_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.protocol.access import KeyCreate

router = APIRouter(prefix="/console/keys", include_in_schema=False)


async def _page(request: Request, user: ConsoleUser, **extra: object) -> Response:
    keys = await policy_of(request).access.list_keys(None, True)
    now = time.time()
    rows = [k.to_dict(now) for k in keys]
    status = int(str(extra.pop("status_code", 200)))
    return render(request, user, "keys/index.html", {"keys": rows, **extra}, status_code=status)


@router.get("")
async def keys(request: Request, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    return await _page(request, user)


@router.post("")
async def create(request: Request, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    form = await request.form()
    fields = {name: form.get(name) for name in ("name", "role", "team_id")}
    try:
        body = KeyCreate.model_validate({k: v for k, v in fields.items() if isinstance(v, str) and v})
        key, secret = await policy_of(request).access.create_key(user.principal, body)
    except ValidationError as exc:
        return await _page(request, user, error=str(exc.errors()[0].get("msg")), status_code=400)
    except APIError as exc:
        return await _page(request, user, error=exc.message, status_code=exc.status)
    return await _page(request, user, created={"name": key.name, "secret": secret}, status_code=201)


PAGE = ConsolePage(title="Keys", path="/console/keys", min_role="admin", router=router, order=60)
