"""``/api/keys``: create, list, change, rotate and revoke API keys (admin)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import policy_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.policy.identities import ApiKey
from lmdeck.protocol.access import KeyCreate, KeyCreated, KeyList, KeyOut, KeyRotate, KeyUpdate

router = APIRouter(prefix="/api/keys", tags=["keys"], route_class=GuardedRoute)


def _out(key: ApiKey) -> KeyOut:
    return KeyOut.model_validate(key.to_dict(time.time()))


def _created(key: ApiKey, secret: str) -> KeyCreated:
    return KeyCreated.model_validate(key.to_dict(time.time()) | {"key": secret})


@router.post("", status_code=201, summary="Create a key; the response holds the key, shown this once")
async def create_key(body: KeyCreate, request: Request, who: Principal = Depends(require("admin"))) -> KeyCreated:
    key, secret = await policy_of(request).access.create_key(who, body)
    return _created(key, secret)


@router.get("", summary="List keys (never their secrets)")
async def list_keys(
    request: Request,
    team_id: str | None = Query(default=None),
    include_revoked: bool = Query(default=True),
    _: Principal = Depends(require("admin")),
) -> KeyList:
    keys = await policy_of(request).access.list_keys(team_id, include_revoked)
    return KeyList(data=[_out(k) for k in keys])


@router.get("/{key_id}", summary="One key")
async def get_key(key_id: str, request: Request, _: Principal = Depends(require("admin"))) -> KeyOut:
    return _out(await policy_of(request).access.key(key_id))


@router.patch("/{key_id}", summary="Change a key's role, team, limits, allowed models or tags, or expiry")
async def update_key(
    key_id: str, body: KeyUpdate, request: Request, who: Principal = Depends(require("admin"))
) -> KeyOut:
    return _out(await policy_of(request).access.update_key(who, key_id, body))


@router.post("/{key_id}/rotate", summary="New secret for a key; the old one works for a grace period")
async def rotate_key(
    key_id: str, request: Request, body: KeyRotate | None = None, who: Principal = Depends(require("admin"))
) -> KeyCreated:
    grace = body.grace_seconds if body is not None else None
    key, secret = await policy_of(request).access.rotate_key(who, key_id, grace)
    return _created(key, secret)


@router.post("/{key_id}/revoke", summary="Revoke a key: it stops working at once")
async def revoke_key(key_id: str, request: Request, who: Principal = Depends(require("admin"))) -> KeyOut:
    return _out(await policy_of(request).access.revoke_key(who, key_id))
