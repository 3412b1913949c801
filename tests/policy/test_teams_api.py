"""Teams and users, and the rules a key and its team put on models and tags."""

from __future__ import annotations

from pathlib import Path

from policy.deck import Deck, auth, fake_route, policy_settings, started_deck


async def test_teams_and_users(deck: Deck) -> None:
    team = await deck.admin("POST", "/api/teams", json={"name": "search", "rpm": 100})
    assert team.status_code == 201
    team_id = team.json()["id"]
    assert (await deck.admin("POST", "/api/teams", json={"name": "search"})).status_code == 409
    assert (await deck.admin("GET", "/api/teams/search")).json()["id"] == team_id
    changed = await deck.admin("PATCH", f"/api/teams/{team_id}", json={"tpm": 5000})
    assert changed.json()["tpm"] == 5000 and changed.json()["rpm"] == 100
    user = await deck.admin("POST", "/api/users", json={"name": "Ada", "email": "ada@example.com", "team_id": team_id})
    assert user.status_code == 201
    users = (await deck.admin("GET", "/api/users", params={"team_id": team_id})).json()["data"]
    assert [u["name"] for u in users] == ["Ada"]
    key = await deck.new_key(name="ada's", user_id=user.json()["id"])
    assert key["team_id"] == team_id  # a user's key belongs to the user's team
    assert (await deck.chat(key["key"])).status_code == 200
    trace = deck.sink.records[-1]
    assert (trace.key_id, trace.team_id, trace.user) == (key["id"], team_id, user.json()["id"])
    actions = [e["action"] for e in (await deck.admin("GET", "/api/audit")).json()["data"]]
    assert actions[:4] == ["team.created", "team.updated", "user.created", "key.created"]
    by_name = await deck.new_key(name="ada's second", user_id="Ada")  # `keys create --user Ada`
    assert (by_name["user_id"], by_name["team_id"]) == (user.json()["id"], team_id)


async def test_a_user_name_shared_by_two_users_must_be_given_as_an_id(deck: Deck) -> None:
    for team in ("red", "blue"):
        team_id = (await deck.admin("POST", "/api/teams", json={"name": team})).json()["id"]
        await deck.admin("POST", "/api/users", json={"name": "Sam", "team_id": team_id})
    refused = await deck.admin("POST", "/api/keys", json={"name": "sam's", "user_id": "Sam"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "user_id" and "give the user's id" in refused.json()["error"]["message"]
    missing = await deck.admin("POST", "/api/keys", json={"name": "x", "user_id": "nobody"})
    assert missing.status_code == 400 and "no user 'nobody'" in missing.json()["error"]["message"]


async def test_a_team_member_sees_only_its_own_team(deck: Deck) -> None:
    mine = (await deck.admin("POST", "/api/teams", json={"name": "mine"})).json()
    await deck.admin("POST", "/api/teams", json={"name": "theirs"})
    viewer = await deck.new_key(name="v", role="viewer", team_id=mine["id"])
    listed = (await deck.http.get("/api/teams", headers=auth(viewer["key"]))).json()["data"]
    assert [t["name"] for t in listed] == ["mine"]
    assert (await deck.http.get("/api/teams/theirs", headers=auth(viewer["key"]))).status_code == 404


async def test_allowed_models_of_key_and_team_both_apply(tmp_path: Path) -> None:
    routes = [fake_route("a"), fake_route("b"), fake_route("c")]
    async with started_deck(policy_settings(tmp_path, routes=routes)) as deck:
        team = (await deck.admin("POST", "/api/teams", json={"name": "t", "allowed_models": ["a", "b"]})).json()
        key = (await deck.new_key(name="k", team_id=team["id"], allowed_models=["b", "c"]))["key"]
        assert [(await deck.chat(key, model=m)).status_code for m in ("a", "b", "c")] == [403, 200, 403]
        refused = (await deck.chat(key, model="a")).json()["error"]
        assert refused["code"] == "model_not_allowed" and refused["param"] == "model"
        models = (await deck.http.get("/v1/models", headers=auth(key))).json()["data"]
        assert [m["id"] for m in models] == ["b"]


async def test_tags_are_checked_and_recorded(deck: Deck) -> None:
    key = (await deck.new_key(name="tagged", allowed_tags=["checkout", "search"]))["key"]
    ok = await deck.chat(key, tags=["checkout"])
    assert ok.status_code == 200
    assert deck.sink.records[-1].tags == ["checkout"]
    refused = await deck.chat(key, tags=["checkout", "admin-tools"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "tag_not_allowed"
    bad = await deck.chat(key, tags="checkout")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tags"
