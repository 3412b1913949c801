"""Retention deletes exactly what is expired, in batches, while ``lmdeck serve`` serves traffic.

The store is seeded with traces of several teams, routes and ages (one on legal hold); per team and
route policies are set through the API; the retention job then runs in batches of five traces
against the same store while OpenAI SDK clients keep calling the gateway (traffic starts before the
job and stops only after it has finished). Judged by content: every request succeeded, exactly the
expired traces are gone and exactly the expired bodies cleared, the held trace is whole, the traffic's
own traces are stored, and the spend totals of the seeded days did not move.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.db import Database
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.traces import TraceRecord, new_trace_id
from lmdeck.testing.servers import TEST_SETTINGS, FakeUpstreamProcess, gateway_process, openai_target
from lmdeck.tracing.expiry import cutoff, held
from lmdeck.tracing.retention import Retention
from lmdeck.tracing.retention_job import RetentionJob, run_report
from lmdeck.tracing.rollups import DAY
from lmdeck.tracing.schema import traces
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.sql_store import SQLTraceStore

NOW = time.time()
TEAMS = ("team-a", "team-b", "team-c")
ROUTES = ("chat", "support")
AGES = (2, 6, 12, 25, 45)
POLICIES = [
    {"name": "a-bodies", "team": "team-a", "body_days": 5},
    {"name": "b-support", "team": "team-b", "route": "support", "body_days": 3, "trace_days": 10},
    {"name": "support", "route": "support", "trace_days": 20},
]
#: (team, route) -> (body_days, trace_days), written out from POLICIES and tracing.retention (raw_days 30).
RULES = {
    ("team-a", "chat"): (5, 30),
    ("team-a", "support"): (5, 30),  # the team's policy is more specific than the route's
    ("team-b", "chat"): (None, 30),
    ("team-b", "support"): (3, 10),
    ("team-c", "chat"): (None, 30),
    ("team-c", "support"): (None, 20),
}


def seed(team: str, route: str, age: int, n: int) -> TraceRecord:
    return TraceRecord(
        id=f"seed-{team}-{route}-{age}-{n}",
        trace_id=new_trace_id(),
        created_at=cutoff(age, NOW) + 7200.0 + n,
        team_id=team,
        key_id=f"key-{team}",
        route=route,
        target=f"fake/{route}",
        upstream_model="fake-model",
        status_code=200,
        input_tokens=20 + n,
        output_tokens=7,
        cost_micros=2500 + n,
        latency_ms=40.0,
        request_body={"messages": [{"role": "user", "content": f"seeded question {n}"}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": f"seeded answer {n}"}}]},
    )


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def spend(db: Database) -> tuple[int, int]:
    """Requests and cost of the seeded days (before today's UTC day, where the live traffic lands)."""
    (total,) = Signals(db).totals(since=NOW - 90 * DAY, until=cutoff(0, NOW))
    return total.requests, total.cost_micros


def test_retention_deletes_exactly_the_expired_traces_in_batches_while_serving(
    tmp_path: Path, fake_upstream: FakeUpstreamProcess
) -> None:
    data_dir = tmp_path / "gw"
    data_dir.mkdir(mode=0o700)
    db = Database(f"sqlite:///{(data_dir / 'lmdeck.db').as_posix()}")
    db.migrate()
    seeded = [seed(t, r, a, n) for t in TEAMS for r in ROUTES for a in AGES for n in range(4)]
    SQLTraceStore(db).insert(seeded)
    on_hold = "seed-team-c-support-45-0"
    before = spend(db)
    assert before == (len(seeded), sum(r.cost_micros for r in seeded))

    config = {
        **TEST_SETTINGS,
        "routes": [{"name": "chat", "targets": [openai_target(fake_upstream)]}],
        # The serving process's own job stays off: this test runs the job, with a fixed clock.
        "tracing": {"retention": {"prune_interval_s": None, "raw_days": 30}},
    }
    with gateway_process(config, data_dir=data_dir) as gw:
        # The policies come from a file through `lmdeck apply` (kind RetentionPolicy), the hold from the CLI.
        declared = tmp_path / "retention.yaml"
        declared.write_text(yaml.safe_dump({"tracing": {"retention": {"policies": POLICIES}}}))
        env = {"LMDECK_BASE_URL": gw.url, "LMDECK_API_KEY": gw.admin_key}
        applied = cli(env, "apply", "-f", str(declared))
        assert "RetentionPolicy b-support: create" in applied and "applied: 3 RetentionPolicy change(s)" in applied
        assert cli(env, "apply", "-f", str(declared)).strip() == "no changes"
        listed = cli(env, "retention", "list")
        assert all(p["name"] in listed for p in POLICIES)
        assert "is on legal hold" in cli(env, "traces", "hold", on_hold, "--reason", "case 2026-114")
        # A hold released is no hold; a policy set and deleted again leaves nothing behind.
        assert "is on legal hold" in cli(env, "traces", "hold", "seed-team-a-chat-45-0")
        assert "is released" in cli(env, "traces", "release", "seed-team-a-chat-45-0")
        assert "created retention policy tmp" in cli(
            env, "retention", "set", "tmp", "--route", "chat", "--body-days", "1"
        )
        assert "deleted retention policy tmp" in cli(env, "retention", "delete", "tmp")

        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60.0)
        job_done = threading.Event()
        job_started = threading.Event()
        answers: list[tuple[str, Any]] = []
        lock = threading.Lock()

        def traffic() -> None:
            sent = 0
            while sent < 5 or not job_done.is_set():
                request_id = f"ret-{uuid.uuid4().hex}"
                try:
                    reply = client.chat.completions.create(
                        model="chat",
                        messages=[{"role": "user", "content": f"live {sent}"}],
                        extra_headers={"x-request-id": request_id},
                    )
                    outcome: Any = reply.choices[0].message.content
                except openai.OpenAIError as exc:  # recorded, and the test fails below
                    outcome = exc
                with lock:
                    answers.append((request_id, outcome))
                sent += 1
                if sent == 2:
                    job_started.set()

        policy = Retention(raw_days=30, minute_days=None, rollup_days=None)
        job = RetentionJob(
            db,
            policy,
            batch_size=5,
            clock=lambda: NOW,
            on_run=lambda pruned: AuditLog(db).append(
                "system:retention", "retention.run", "traces", after=run_report(pruned)
            ),
        )
        with ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(traffic) for _ in range(4)]
            assert job_started.wait(120), "no request was answered"
            try:
                pruned = job.run_once()
            finally:
                job_done.set()
            for done in clients:
                done.result()

        failures = [(rid, a) for rid, a in answers if not isinstance(a, str) or not a]
        assert not failures, failures[:3]
        assert len(answers) >= 20
        # The traffic's own traces land (each one looked up by its request id), untouched by retention.
        for request_id, _ in answers[:: max(1, len(answers) // 5)]:
            assert gw.trace(request_id)["route"] == "chat"

    def rule(r: TraceRecord) -> tuple[int | None, int | None]:
        return RULES[(r.team_id or "", r.route or "")]

    gone = {r.id for r in seeded if r.created_at < cutoff(rule(r)[1] or 0, NOW)} - {on_hold}
    cleared = {
        r.id
        for r in seeded
        if r.id not in gone and rule(r)[0] is not None and r.created_at < cutoff(rule(r)[0] or 0, NOW)
    } - {on_hold}
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(traces.c.id, traces.c.request_body, traces.c.response_body).where(traces.c.id.like("seed-%"))
        ).all()
    kept = {row[0]: row[1] is None and row[2] is None for row in rows}
    assert set(kept) == {r.id for r in seeded} - gone
    assert {i for i, was_cleared in kept.items() if was_cleared} == cleared
    assert held(db) == [on_hold] and not kept[on_hold]
    assert (pruned.traces, pruned.bodies) == (len(gone), len(cleared))
    assert len(gone) > 5 and len(cleared) > 5  # more than one batch of each
    by_policy = {e.policy: (e.traces, e.bodies) for e in pruned.by_policy}
    assert by_policy["b-support"] == (
        len([i for i in gone if i.startswith("seed-team-b-support")]),
        len([i for i in cleared if i.startswith("seed-team-b-support")]),
    )
    # Rollups are aggregates: the seeded days' spend is what it was.
    assert spend(db) == before
    (entry,) = AuditLog(db).entries(action="retention.run")
    assert entry.to_dict()["after"]["policies"] == [e.to_dict() for e in pruned.by_policy]
    db.dispose()
