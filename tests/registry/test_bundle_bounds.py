"""Model names a client makes up are neither cached nor stored as bundles.

Regression: each request for a model that does not exist added its name to the snapshot's
bundle cache and a row to ``registry_bundles``, so requests with ever-new names grew the
gateway's memory and its store without bound.
"""

from __future__ import annotations

from sqlalchemy import text

from .conftest import Deck


def _stored_bundles(deck: Deck) -> int:
    with deck.gateway.db.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM registry_bundles")).scalar_one())


async def test_unknown_models_leave_no_bundle_behind(deck: Deck) -> None:
    served = await deck.chat(model="plain", messages=[{"role": "user", "content": "hi"}])
    assert served.status_code == 200
    registry = deck.gateway.registry
    await registry.bundles.drain()
    cached, stored = len(registry.live.snapshot.bundles), _stored_bundles(deck)
    for i in range(200):
        response = await deck.chat(model=f"made-up-{i}", messages=[{"role": "user", "content": "hi"}])
        assert response.status_code == 404
        assert deck.sink.records[-1].bundle_hash is None
    await registry.bundles.drain()
    assert len(registry.live.snapshot.bundles) == cached
    assert _stored_bundles(deck) == stored
