"""The ownership rules of :mod:`lmdeck.policy.ownership`, decided for every kind of caller."""

from __future__ import annotations

import pytest

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    Owner,
    RouteOwner,
    check_add,
    check_change,
    check_move_traffic,
    check_read,
    check_variant_model,
    check_variant_route,
    may_change,
    may_move_traffic,
    may_read,
    owner_after_update,
    owner_for_new,
    visible_condition,
)
from lmdeck.protocol import APIError

ADMIN = Principal(key_id="admin", role="admin")
DEV_A = Principal(key_id="dev-a", role="developer", team_id="team_a")
DEV_B = Principal(key_id="dev-b", role="developer", team_id="team_b")
VIEWER_A = Principal(key_id="viewer-a", role="viewer", team_id="team_a")
APP_A = Principal(key_id="app-a", role="inference", team_id="team_a")
TEAMLESS_DEV = Principal(key_id="dev", role="developer")

OF_A = Owner("team_a")
SHARED_A = Owner("team_a", "shared")
OF_DEFAULT = Owner(None)


def missing() -> APIError:
    return APIError(404, "no such thing", code="not_found")


@pytest.mark.parametrize(
    ("principal", "owner", "read", "change"),
    [
        (ADMIN, OF_A, True, True),
        (DEV_A, OF_A, True, True),
        (DEV_B, OF_A, False, False),
        (DEV_B, SHARED_A, True, False),
        (VIEWER_A, OF_A, True, False),
        (APP_A, OF_A, True, False),
        (TEAMLESS_DEV, OF_DEFAULT, True, True),
        (TEAMLESS_DEV, OF_A, False, False),
        (DEV_A, OF_DEFAULT, False, False),
    ],
)
def test_who_reads_and_changes_what(principal: Principal, owner: Owner, read: bool, change: bool) -> None:
    assert may_read(principal, owner) is read
    assert may_change(principal, owner) is change


def test_another_teams_resource_is_missing_unless_shared() -> None:
    with pytest.raises(APIError) as hidden:
        check_read(DEV_B, OF_A, missing)
    assert hidden.value.status == 404 and hidden.value.message == "no such thing"
    with pytest.raises(APIError) as hidden_write:
        check_change(DEV_B, OF_A, "prompt 'x'", missing)
    assert hidden_write.value.status == 404
    with pytest.raises(APIError) as shared_write:
        check_change(DEV_B, SHARED_A, "prompt 'x'", missing)
    assert shared_write.value.status == 403 and "team 'team_a'" in shared_write.value.message
    assert check_change(DEV_A, OF_A, "prompt 'x'", missing) == OF_A


def test_a_name_held_by_another_team_cannot_be_taken() -> None:
    assert check_add(DEV_B, None, "prompt 'x'") is None
    with pytest.raises(APIError) as taken:
        check_add(DEV_B, OF_A, "prompt 'x'")
    assert taken.value.status == 409 and taken.value.code == "name_taken"


def test_new_resources_belong_to_the_creators_team_and_only_admins_choose() -> None:
    assert owner_for_new(DEV_A) == Owner("team_a", "team")
    assert owner_for_new(DEV_A, "team_a", "shared") == Owner("team_a", "shared")
    assert owner_for_new(ADMIN, "team_b") == Owner("team_b")
    assert owner_for_new(ADMIN) == OF_DEFAULT
    with pytest.raises(APIError) as refused:
        owner_for_new(DEV_A, "team_b")
    assert refused.value.status == 403 and refused.value.param == "team"


def test_sharing_is_for_the_owners_and_giving_away_for_admins() -> None:
    assert owner_after_update(DEV_A, OF_A, "x", visibility="shared") == SHARED_A
    assert owner_after_update(ADMIN, OF_A, "x", team="team_b", team_given=True) == Owner("team_b")
    assert owner_after_update(ADMIN, OF_A, "x", team=None, team_given=True) == OF_DEFAULT
    with pytest.raises(APIError):
        owner_after_update(DEV_A, OF_A, "x", team="team_b", team_given=True)
    with pytest.raises(APIError):
        owner_after_update(VIEWER_A, OF_A, "x", visibility="shared")


def test_the_sql_condition_matches_the_rule() -> None:
    assert visible_condition(ADMIN) == "1 = 1"
    assert visible_condition(DEV_A) == "(visibility = 'shared' OR team_id = :viewer_team)"
    assert visible_condition(TEAMLESS_DEV, team="d.team_id", visibility="d.visibility") == (
        "(d.visibility = 'shared' OR d.team_id IS NULL)"
    )


ROUTE_A = RouteOwner("support-a", "team_a", basis="its configuration names the team")
ROUTE_B = RouteOwner("support-b", "team_b")
ADMIN_ROUTE = RouteOwner("gpt-4o", admins_only=True, basis="a configured route that names no team")
DEFAULT_ROUTE = RouteOwner("demo-bot", None)


@pytest.mark.parametrize(
    ("principal", "route", "allowed"),
    [
        (ADMIN, ROUTE_A, True),
        (ADMIN, ADMIN_ROUTE, True),
        (DEV_A, ROUTE_A, True),
        (DEV_A, ROUTE_B, False),
        (DEV_A, ADMIN_ROUTE, False),
        (VIEWER_A, ROUTE_A, False),
        (APP_A, ROUTE_A, False),
        (TEAMLESS_DEV, DEFAULT_ROUTE, True),
        (TEAMLESS_DEV, ADMIN_ROUTE, False),
        (DEV_A, DEFAULT_ROUTE, False),
    ],
)
def test_who_may_move_a_routes_traffic(principal: Principal, route: RouteOwner, allowed: bool) -> None:
    assert may_move_traffic(principal, route) is allowed
    if allowed:
        check_move_traffic(principal, [route], "an experiment")
    else:
        with pytest.raises(APIError) as refused:
            check_move_traffic(principal, [route], "an experiment")
        assert refused.value.status == 403 and refused.value.code == "not_route_owner"
        assert route.route in refused.value.message


def test_variants_serve_only_what_the_routes_owner_may_use() -> None:
    check_variant_model(ROUTE_A, "v2", "a-bot", OF_A)
    check_variant_model(ROUTE_A, "v2", "b-bot", Owner("team_b", "shared"))
    check_variant_model(ADMIN_ROUTE, "v2", "b-bot", Owner("team_b"))
    with pytest.raises(APIError) as foreign:
        check_variant_model(ROUTE_A, "evil", "b-bot", Owner("team_b"))
    assert foreign.value.status == 403 and "b-bot" in foreign.value.message
    check_variant_route(ROUTE_A, "v2", ADMIN_ROUTE)
    check_variant_route(ROUTE_A, "v2", RouteOwner("other-a", "team_a"))
    with pytest.raises(APIError):
        check_variant_route(ROUTE_A, "evil", ROUTE_B)
