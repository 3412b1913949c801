"""Feedback on traces: by trace id or x-request-id, team isolation, aggregation, metrics."""

from __future__ import annotations

from .conftest import Deck


async def answer(deck: Deck, who: str) -> tuple[str, str]:
    r = await deck.chat(who=who, model="calc", messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert r.status_code == 200, r.text
    record = deck.gateway.sink.records[-1]  # type: ignore[attr-defined]
    return r.headers["x-request-id"], record.id


async def test_an_app_key_gives_feedback_on_its_teams_traces_only(deck: Deck) -> None:
    blue_request, blue_trace = await answer(deck, "blue-app")
    red_request, _ = await answer(deck, "red-app")
    ok = await deck.call("POST", "/api/feedback", who="blue-app", json={"trace_id": blue_request, "value": "up"})
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["trace_id"] == blue_trace and body["value"] == 1.0 and body["team_id"] == "team_blue"
    assert body["route"] == "calc" and body["model"] == "careful"
    other = await deck.call("POST", "/api/feedback", who="blue-app", json={"trace_id": red_request, "value": 0})
    assert other.status_code == 404 and other.json()["error"]["code"] == "trace_not_found"
    admin = await deck.call("POST", "/api/feedback", json={"trace_id": red_request, "value": 0, "comment": "wrong"})
    assert admin.status_code == 201


async def test_feedback_by_record_id_lists_and_aggregates(deck: Deck) -> None:
    _, trace_id = await answer(deck, "admin")
    for value in (1, 0, 1):
        r = await deck.call("POST", "/api/feedback", json={"trace_id": trace_id, "name": "thumbs", "value": value})
        assert r.status_code == 201
    label = await deck.call("POST", "/api/feedback", json={"trace_id": trace_id, "name": "tone", "label": "polite"})
    assert label.status_code == 201
    listed = (await deck.call("GET", "/api/feedback", who="viewer", params={"trace_id": trace_id})).json()["data"]
    assert len(listed) == 4
    summary = (await deck.call("GET", "/api/feedback/summary", params={"by": "model"})).json()["data"]
    thumbs = next(s for s in summary if s["name"] == "thumbs")
    assert thumbs["count"] == 3 and abs(thumbs["mean"] - 2 / 3) < 1e-9 and thumbs["model"] == "careful"
    metrics = (await deck.client.get("/metrics")).text
    assert (
        'lmdeck_feedback_value_count{model="careful",name="thumbs",prompt="none",prompt_version="none",route="calc"} 3.0'
        in metrics
    )


async def test_feedback_found_in_the_store_after_a_restart_of_memory(deck: Deck) -> None:
    _, trace_id = await answer(deck, "admin")
    record = deck.gateway.sink.records[-1]  # type: ignore[attr-defined]
    deck.evaluation.recent._by_key.clear()
    deck.evaluation.feedback.traces.insert([record])
    r = await deck.call("POST", "/api/feedback", json={"trace_id": record.request_id, "value": 1})
    assert r.status_code == 201 and r.json()["trace_id"] == trace_id


async def test_bad_feedback_is_a_400(deck: Deck) -> None:
    _, trace_id = await answer(deck, "admin")
    for body in (
        {"trace_id": trace_id},
        {"trace_id": trace_id, "value": "NaN"},
        {"trace_id": trace_id, "value": 1, "source": "robot"},
        {"value": 1},
        {"trace_id": trace_id, "value": 1, "colour": "red"},
    ):
        r = await deck.call("POST", "/api/feedback", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["message"]
    unknown = await deck.call("POST", "/api/feedback", json={"trace_id": "nope", "value": 1})
    assert unknown.status_code == 404
    nokey = await deck.client.post("/api/feedback", json={"trace_id": trace_id, "value": 1})
    assert nokey.status_code == 401
