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


async def test_a_team_reusing_another_teams_request_id_changes_nothing_for_it(deck: Deck) -> None:
    """Client ids are attributes: team red sending team blue's x-request-id and traceparent
    neither takes over blue's feedback nor shows up in blue's trace lookups or exports."""
    sent = {"x-request-id": "checkout-42", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    question = [{"role": "user", "content": "What is 2 + 2?"}]
    blue = await deck.chat(who="blue-app", headers=sent, model="calc", messages=question)
    blue_record = deck.gateway.sink.records[-1]  # type: ignore[attr-defined]
    red = await deck.chat(who="red-app", headers=sent, model="calc", messages=question)
    red_record = deck.gateway.sink.records[-1]  # type: ignore[attr-defined]
    assert blue.status_code == red.status_code == 200
    # lmdeck's ids are its own and unique; the caller's are kept beside them.
    assert blue.headers["x-request-id"] != red.headers["x-request-id"] != "checkout-42"
    assert blue_record.request_id == blue.headers["x-request-id"] and blue_record.trace_id != red_record.trace_id
    assert blue_record.client_request_id == red_record.client_request_id == "checkout-42"
    assert blue_record.client_trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    # The response's traceparent continues the caller's trace with lmdeck's span.
    assert blue.headers["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{blue_record.span_id}-01"
    deck.evaluation.feedback.traces.insert([blue_record, red_record])

    # Feedback: blue's id still finds blue's trace (from memory and from the store); red cannot reach it.
    for recent in (True, False):
        if not recent:
            deck.evaluation.recent._by_key.clear()
        mine = await deck.call(
            "POST", "/api/feedback", who="blue-app", json={"trace_id": blue.headers["x-request-id"], "value": 1}
        )
        assert mine.status_code == 201, mine.text
        assert mine.json()["trace_id"] == blue_record.id and mine.json()["team_id"] == "team_blue"
    for key in ("checkout-42", blue.headers["x-request-id"], blue_record.trace_id, blue_record.id):
        theirs = await deck.call("POST", "/api/feedback", who="red-app", json={"trace_id": key, "value": 0})
        assert theirs.status_code == 404, (key, theirs.text)
    listed = await deck.call("GET", "/api/feedback", who="blue-dev", params={"trace_id": blue_record.id})
    assert [f["value"] for f in listed.json()["data"]] == [1.0, 1.0]

    # Trace lookups: by the caller's id each team finds its own trace only.
    for who, record in (("blue-dev", blue_record), ("red-dev", red_record)):
        found = await deck.call("GET", "/api/traces", who=who, params={"client_request_id": "checkout-42"})
        assert [t["id"] for t in found.json()["data"]] == [record.id]
    assert (await deck.call("GET", f"/api/traces/{blue_record.id}", who="red-dev")).status_code == 404
    by_server_id = await deck.call("GET", "/api/traces", params={"request_id": blue.headers["x-request-id"]})
    assert [t["id"] for t in by_server_id.json()["data"]] == [blue_record.id]

    # Exports: a dataset cut from blue's traces holds blue's trace only.
    cut = await deck.call(
        "POST", "/api/registry/datasets/blue-set/from-traces", who="blue-dev", json={"filter": "route=calc"}
    )
    assert cut.status_code == 200 and cut.json()["row_count"] == 1, cut.text
    rows = await deck.call("GET", "/api/registry/datasets/blue-set/versions/1/rows", who="blue-dev")
    assert [r["trace_id"] for r in rows.json()["data"]] == [blue_record.id]
