"""``/api/secrets``: provider secrets, stored encrypted; their values are never returned (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import policy_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import SecretList, SecretOut, SecretPut

router = APIRouter(prefix="/api/secrets", tags=["secrets"], route_class=GuardedRoute)

SecretName = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="what targets refer to: {$secret: name}")


@router.get("", summary="Names of stored secrets (never their values)")
async def list_secrets(request: Request, _: Principal = Depends(require("admin"))) -> SecretList:
    names = await policy_of(request).access.secret_names()
    return SecretList(data=[SecretOut.model_validate(n) for n in names])


@router.put("/{name}", summary='Store or replace a secret; a target uses it as {"$secret": name}')
async def put_secret(
    body: SecretPut, request: Request, name: str = SecretName, who: Principal = Depends(require("admin"))
) -> SecretOut:
    return SecretOut.model_validate(await policy_of(request).access.put_secret(who, name, body.value))


@router.delete("/{name}", status_code=204, summary="Delete a secret")
async def delete_secret(request: Request, name: str = SecretName, who: Principal = Depends(require("admin"))) -> None:
    await policy_of(request).access.delete_secret(who, name)
