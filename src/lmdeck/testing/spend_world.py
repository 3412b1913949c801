"""A real gateway (``console_gateway``) given two teams, their keys and priced traffic, for the console's
spend, teams and audit page tests (``tests/console/conftest.py`` makes it the ``spend_world`` fixture).

Team ``a``'s developer key asks route ``demo-cached`` the same question twice (the second answer is a
cache hit), team ``b``'s once; a viewer key belongs to no team. Every request's trace has landed (and
``/api/spend`` counts it) before a test starts. Team names carry a random suffix, so a module may build
it once and tests may add budgets and teams of their own.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from lmdeck.testing.servers import GatewayProcess

WAIT_S = 120.0


@dataclass(frozen=True)
class SpendWorld:
    """The gateway and what :func:`build_spend_world` made in it."""

    gw: GatewayProcess
    #: Secrets: ``admin``, ``a_dev`` and ``b_dev`` (developers of teams a and b), ``viewer`` (no team).
    keys: dict[str, str]
    #: Key ids by the same names.
    key_ids: dict[str, str]
    team_a: str
    team_b: str

    def api(self, method: str, path: str, key: str = "admin", **kwargs: Any) -> httpx.Response:
        """An API call with the secret named ``key``."""
        return httpx.request(
            method, f"{self.gw.url}{path}", headers=self.gw.headers(self.keys[key]), timeout=120, **kwargs
        )


def _ask(gw: GatewayProcess, key: str, route: str, text: str) -> str:
    request_id = f"spend-{uuid.uuid4().hex}"
    body = {"model": route, "messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0}
    answer = httpx.post(
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={**gw.headers(key), "x-request-id": request_id},
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    return request_id


def build_spend_world(gw: GatewayProcess) -> SpendWorld:
    """Add the teams, keys and requests to ``gw`` and wait until ``/api/spend`` counts every request.

    Raises ``AssertionError`` when a call fails or the requests are not counted within ``WAIT_S`` seconds.
    """
    suffix = uuid.uuid4().hex[:6]
    admin = {"authorization": f"Bearer {gw.admin_key}"}
    teams = {}
    for name in ("a", "b"):
        made = httpx.post(f"{gw.url}/api/teams", json={"name": f"spend-{name}-{suffix}"}, headers=admin, timeout=60)
        assert made.status_code == 201, made.text
        teams[name] = made.json()["id"]
    keys = {"admin": gw.admin_key}
    key_ids: dict[str, str] = {}
    for name, role, team in (("a_dev", "developer", "a"), ("b_dev", "developer", "b"), ("viewer", "viewer", None)):
        body: dict[str, Any] = {"name": f"{name}-{suffix}", "role": role}
        if team is not None:
            body["team_id"] = teams[team]
        made = httpx.post(f"{gw.url}/api/keys", json=body, headers=admin, timeout=60)
        assert made.status_code == 201, made.text
        keys[name], key_ids[name] = made.json()["key"], made.json()["id"]
    world = SpendWorld(gw, keys, key_ids, teams["a"], teams["b"])
    question = f"Say a colour, {suffix}."
    sent = [_ask(gw, keys["a_dev"], "demo-cached", question) for _ in range(2)]
    sent.append(_ask(gw, keys["b_dev"], "demo", f"Say a number, {suffix}."))
    for request_id in sent:
        gw.trace(request_id, timeout=WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while True:
        report = world.api("GET", "/api/spend", params={"by": "team"})
        counted = {r["group"]: r["requests"] for r in report.json()["data"]} if report.status_code == 200 else {}
        if counted.get(teams["a"]) == 2 and counted.get(teams["b"]) == 1:
            return world
        assert time.monotonic() < deadline, f"spend never counted the requests: {report.text}"
        time.sleep(0.2)
