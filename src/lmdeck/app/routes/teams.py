"""``/api/teams`` and ``/api/users``: the groups keys belong to, and the people they are issued to."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import policy_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.policy.identities import Team
from lmdeck.protocol import APIError
from lmdeck.protocol.access import TeamCreate, TeamList, TeamOut, TeamUpdate, UserCreate, UserList, UserOut

router = APIRouter(prefix="/api", tags=["teams"], route_class=GuardedRoute)


async def teams_seen_by(request: Request, who: Principal) -> list[Team]:
    """The teams ``who`` may see: every team for an admin or a key without a team, else its own."""
    teams = await policy_of(request).access.teams()
    if who.role != "admin" and who.team_id is not None:
        teams = [t for t in teams if t.id == who.team_id]
    return teams


@router.post("/teams", status_code=201, summary="Create a team")
async def create_team(body: TeamCreate, request: Request, who: Principal = Depends(require("admin"))) -> TeamOut:
    team = await policy_of(request).access.create_team(who, body)
    return TeamOut.model_validate(team.to_dict())


@router.get("/teams", summary="List teams (a non-admin key with a team sees only its own)")
async def list_teams(request: Request, who: Principal = Depends(require("viewer"))) -> TeamList:
    teams = await teams_seen_by(request, who)
    return TeamList(data=[TeamOut.model_validate(t.to_dict()) for t in teams])


@router.get("/teams/{team_id}", summary="One team, by id or name")
async def get_team(team_id: str, request: Request, who: Principal = Depends(require("viewer"))) -> TeamOut:
    team = await policy_of(request).access.team(team_id)
    if who.role != "admin" and who.team_id is not None and team.id != who.team_id:
        raise APIError(404, f"no team {team_id!r}", code="not_found")
    return TeamOut.model_validate(team.to_dict())


@router.patch("/teams/{team_id}", summary="Change a team's name, limits, allowed models or tags")
async def update_team(
    team_id: str, body: TeamUpdate, request: Request, who: Principal = Depends(require("admin"))
) -> TeamOut:
    team = await policy_of(request).access.update_team(who, team_id, body)
    return TeamOut.model_validate(team.to_dict())


@router.post("/users", status_code=201, summary="Create a user")
async def create_user(body: UserCreate, request: Request, who: Principal = Depends(require("admin"))) -> UserOut:
    user = await policy_of(request).access.create_user(who, body)
    return UserOut.model_validate(user.to_dict())


@router.get("/users", summary="List users, optionally of one team")
async def list_users(
    request: Request, team_id: str | None = Query(default=None), _: Principal = Depends(require("admin"))
) -> UserList:
    users = await policy_of(request).access.users(team_id)
    return UserList(data=[UserOut.model_validate(u.to_dict()) for u in users])
