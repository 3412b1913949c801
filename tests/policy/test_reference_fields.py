"""Team and user references in key and user bodies: names resolve to ids, empty strings are refused.

Regressions: PATCH /api/keys/{id} with ``"team_id": ""`` skipped the existence check and failed
on the store's foreign key (a 500), and so did a team given by its name in PATCH /api/keys/{id}
or POST /api/users (stored as the name, not the id).
"""

from __future__ import annotations

from policy.deck import Deck


async def test_references_by_name_are_stored_as_ids_and_empty_ones_are_refused(deck: Deck) -> None:
    team = (await deck.admin("POST", "/api/teams", json={"name": "payments"})).json()
    key = (await deck.admin("POST", "/api/keys", json={"name": "k"})).json()
    for body in ({"team_id": ""}, {"user_id": ""}):
        response = await deck.admin("PATCH", f"/api/keys/{key['id']}", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] in body
    moved = await deck.admin("PATCH", f"/api/keys/{key['id']}", json={"team_id": "payments"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["team_id"] == team["id"]
    user = await deck.admin("POST", "/api/users", json={"name": "ana", "team_id": "payments"})
    assert user.status_code == 201, user.text
    assert user.json()["team_id"] == team["id"]
    assert (await deck.admin("POST", "/api/keys", json={"name": "k2", "team_id": ""})).status_code == 400
