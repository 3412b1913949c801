"""Who owns a resource, who may read or change it, and who may move a route's traffic.

Every permission decision about owned resources is made here; serving classes
only ask. Prompts, models, datasets, experiments, eval runs and online rules
belong to a team (``team_id``; ``None`` is the *default team*: the bootstrap
admin key and every key issued without a team). A resource is ``team``-visible
(its team only) or ``shared`` (every team may read it; only its team changes it)::

    owner = Owner("team_search", "team")
    may_read(Principal(key_id="k", role="viewer", team_id="team_search"), owner)     # True
    check_read(Principal(key_id="k", role="viewer", team_id="team_ads"), owner,
               lambda: APIError(404, "no prompt 'x'"))                                # raises the 404
    check_change(developer_of_ads, Owner("team_search", "shared"), "prompt 'x'", missing)  # 403: readable

Rules:

- ``admin`` reads and changes everything, and may create for (or move a resource to) any team.
- ``developer`` changes the resources of its own team only.
- ``viewer`` and ``developer`` read their team's resources and shared ones.
- ``inference`` keys follow their team too (a prompt they render must be readable by them).
- A resource another caller may not read is answered 404, like one that does not exist, so that
  its existence does not leak; a readable (shared) resource the caller may not change is a 403.

Moving live traffic is a stronger permission. A route's owner (:class:`RouteOwner`) is the
team its configuration names, else the team of the registry models it follows, else the
admins; creating an experiment on a route, moving a model alias a route follows, or adding
the version a route's ``@latest`` follows needs :func:`may_move_traffic`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility

VISIBILITIES: tuple[Visibility, ...] = ("team", "shared")

#: How messages name the owner ``team_id=None``.
DEFAULT_TEAM = "the default team (keys without a team)"

MissingError = Callable[[], APIError]


@dataclass(frozen=True)
class Owner:
    """The team a resource belongs to (``None``: the default team) and who else may read it.

    >>> Owner("team_1").to_dict()
    {'team_id': 'team_1', 'visibility': 'team'}
    """

    team_id: str | None = None
    visibility: Visibility = "team"

    def to_dict(self) -> dict[str, Any]:
        return {"team_id": self.team_id, "visibility": self.visibility}

    @property
    def team_name(self) -> str:
        return f"team {self.team_id!r}" if self.team_id is not None else DEFAULT_TEAM


def is_admin(principal: Principal) -> bool:
    return principal.role == "admin"


def same_team(principal: Principal, team_id: str | None) -> bool:
    """Whether the caller acts in ``team_id`` (a key without a team acts in the default team)."""
    return principal.team_id == team_id


def may_read(principal: Principal, owner: Owner) -> bool:
    return is_admin(principal) or owner.visibility == "shared" or same_team(principal, owner.team_id)


def may_change(principal: Principal, owner: Owner) -> bool:
    return is_admin(principal) or (principal.at_least("developer") and same_team(principal, owner.team_id))


def team_may_use(team_id: str | None, owner: Owner) -> bool:
    """Whether members of ``team_id`` may use a resource: their own, or a shared one."""
    return owner.visibility == "shared" or owner.team_id == team_id


def check_read(principal: Principal, owner: Owner | None, missing: MissingError) -> Owner:
    """The owner, when the caller may read the resource; else (or when it does not exist) ``missing()``."""
    if owner is None or not may_read(principal, owner):
        raise missing()
    return owner


def check_change(principal: Principal, owner: Owner | None, what: str, missing: MissingError) -> Owner:
    """The owner, when the caller may change the resource ``what`` (e.g. "prompt 'x'").

    Raises ``missing()`` (a 404) when it does not exist or the caller may not read it, and a
    403 naming the owning team when the caller may read it (it is shared) but not change it.
    """
    check_read(principal, owner, missing)
    assert owner is not None
    if not may_change(principal, owner):
        raise APIError(
            403,
            f"{what} belongs to {owner.team_name}: only its developers or an admin may change it",
            code="not_owner",
        )
    return owner


def check_add(principal: Principal, owner: Owner | None, what: str) -> Owner | None:
    """Before creating ``what`` or adding a version to it: its owner (None when it is new).

    Names are global, so a name another team holds cannot be taken: a 409 that says so
    (and nothing more) when the caller may not read it, the 403 of :func:`check_change`
    when it is shared with the caller.
    """
    if owner is None:
        return None
    if not may_read(principal, owner):
        raise APIError(409, f"the name of {what} is taken by another team: choose another name", code="name_taken")
    return check_change(principal, owner, what, lambda: APIError(404, f"no {what}"))


def owner_for_new(principal: Principal, team: str | None = None, visibility: Visibility | None = None) -> Owner:
    """The owner of a resource ``principal`` creates now.

    ``team`` (already resolved to a team id) is the caller's own by default; only an admin
    may name another. ``visibility`` is ``team`` unless the creator chooses ``shared``.
    """
    chosen = principal.team_id if team is None else team
    if not is_admin(principal) and chosen != principal.team_id:
        raise APIError(
            403,
            f"only an admin may create for another team; this key acts in "
            f"{Owner(principal.team_id).team_name}: leave `team` out",
            code="forbidden",
            param="team",
        )
    return Owner(chosen, visibility or "team")


def owner_after_update(
    principal: Principal,
    current: Owner,
    what: str,
    *,
    team: str | None = None,
    team_given: bool = False,
    visibility: Visibility | None = None,
) -> Owner:
    """The owner after ``PATCH {"team": ..., "visibility": ...}``; the caller may already change ``what``.

    Sharing (or unsharing) is for the owning team's developers and admins; giving the resource
    to another team (``team_given``; ``team`` None is the default team) is for admins only.
    """
    if not may_change(principal, current):
        raise APIError(403, f"{what} belongs to {current.team_name}", code="not_owner")
    if team_given and team != current.team_id and not is_admin(principal):
        raise APIError(403, "only an admin may give a resource to another team", code="forbidden", param="team")
    return Owner(team if team_given else current.team_id, visibility or current.visibility)


def visible_condition(principal: Principal, *, team: str = "team_id", visibility: str = "visibility") -> str:
    """A SQL condition selecting the rows ``principal`` may read; binds ``:viewer_team``.

    >>> visible_condition(Principal(key_id="k", role="viewer"))
    "(visibility = 'shared' OR team_id IS NULL)"
    """
    if is_admin(principal):
        return "1 = 1"
    mine = f"{team} IS NULL" if principal.team_id is None else f"{team} = :viewer_team"
    return f"({visibility} = 'shared' OR {mine})"


def visible_params(principal: Principal) -> dict[str, Any]:
    """The parameters :func:`visible_condition` binds."""
    return {"viewer_team": principal.team_id}


# -- live traffic ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteOwner:
    """Who decides where a route's traffic goes.

    ``admins_only`` for a configured route that names no team (or follows models of several
    teams); otherwise ``team_id`` (``None``: the default team). ``basis`` says why, for messages.
    """

    route: str
    team_id: str | None = None
    admins_only: bool = False
    basis: str = ""

    @property
    def described(self) -> str:
        who = "the admins" if self.admins_only else Owner(self.team_id).team_name
        return f"route {self.route!r} is owned by {who}" + (f" ({self.basis})" if self.basis else "")

    def to_dict(self) -> dict[str, Any]:
        return {"team_id": self.team_id, "admins_only": self.admins_only, "basis": self.basis}


def may_move_traffic(principal: Principal, owner: RouteOwner) -> bool:
    """May ``principal`` change where ``owner.route``'s traffic goes (experiments, alias moves, weights)?"""
    if is_admin(principal):
        return True
    if owner.admins_only:
        return False
    return principal.at_least("developer") and same_team(principal, owner.team_id)


def check_move_traffic(principal: Principal, owners: Iterable[RouteOwner], action: str) -> None:
    """Raise a 403 naming the first route whose traffic ``action`` would move without permission."""
    for owner in owners:
        if not may_move_traffic(principal, owner):
            raise APIError(
                403,
                f"{action} moves the traffic of route {owner.route!r}, and {owner.described}: "
                "ask one of its developers or an admin",
                code="not_route_owner",
            )


def route_may_send_to(source: RouteOwner, target: RouteOwner) -> bool:
    """May an experiment on ``source`` send its traffic to route ``target``?

    To a route of the same owner, or to an admin-owned one (shared infrastructure); an
    admin-owned route's traffic (changed by admins only) may go anywhere.
    """
    if source.admins_only or target.admins_only:
        return True
    return source.team_id == target.team_id


def route_may_use(source: RouteOwner, owner: Owner) -> bool:
    """May traffic of route ``source`` be served by a resource (a model version) owned by ``owner``?"""
    return source.admins_only or team_may_use(source.team_id, owner)


def may_watch_traffic(principal: Principal, owner: RouteOwner) -> bool:
    """Members of a route's owning team (viewers too) see what is done to its traffic (experiments)."""
    return is_admin(principal) or (not owner.admins_only and same_team(principal, owner.team_id))


def check_variant_model(route: RouteOwner, variant: str, model: str, owner: Owner | None) -> None:
    """A variant of an experiment on ``route`` may serve only a model ``route``'s owner may use."""
    if owner is None or route_may_use(route, owner):
        return
    raise APIError(
        403,
        f"variant {variant!r} serves model {model!r} of {owner.team_name}, which {route.described} may not "
        "use: serve a model of the route's team (or a shared one)",
        code="not_route_owner",
        param="variants",
    )


def check_variant_route(route: RouteOwner, variant: str, target: RouteOwner) -> None:
    """A variant of an experiment on ``route`` may send traffic only to a route of the same owner
    or to an admin-owned one."""
    if route_may_send_to(route, target):
        return
    raise APIError(
        403,
        f"variant {variant!r} sends the traffic of route {route.route!r} to route {target.route!r}, and "
        f"{target.described}: choose a route of the same team (or an admin-owned one)",
        code="not_route_owner",
        param="variants",
    )


def check_prompt_variant(principal: Principal, variant: str, changes_route_or_model: bool) -> None:
    """A prompt experiment covers every caller of the prompt, on whatever route they call: only an
    admin may make its variants change the route or the model."""
    if changes_route_or_model and not is_admin(principal):
        raise APIError(
            403,
            f"variant {variant!r} changes the route or model of a prompt's callers; a prompt experiment "
            "changes only the prompt version: run a route experiment on a route your team owns instead",
            code="not_route_owner",
            param="variants",
        )
