"""``lmdeck keys|teams|budgets|spend`` against a real ``lmdeck serve``: the operator's path, in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process({"default_routes": False}, data_dir=tmp_path_factory.mktemp("keys-cli")) as started:
        yield started


def run(gw: GatewayProcess, *args: str, key: str | None = None) -> str:
    result = CliRunner().invoke(app, [*args, "--base-url", gw.url, "--api-key", key or gw.admin_key])
    assert result.exit_code == 0, result.output
    return result.output


def models_status(gw: GatewayProcess, key: str) -> int:
    return httpx.get(f"{gw.url}/v1/models", headers=gw.headers(key), timeout=60).status_code


def test_a_key_from_creation_to_revocation(gw: GatewayProcess) -> None:
    team = json.loads(run(gw, "teams", "list", "--json"))
    assert team == []
    run(gw, "teams", "create", "search", "--rpm", "600")
    listed = run(gw, "teams", "list")
    assert "search" in listed and "600" in listed
    run(gw, "teams", "add-user", "search", "Ada", "--email", "ada@example.com")
    assert "Ada" in run(gw, "teams", "users", "search")
    team_id = json.loads(run(gw, "teams", "list", "--json"))[0]["id"]

    created = json.loads(run(gw, "keys", "create", "--name", "ci", "--role", "viewer", "--team", team_id, "--json"))
    key = created["key"]
    assert models_status(gw, key) == 200
    table = run(gw, "keys", "list")
    assert created["id"] in table and created["prefix"] in table and key not in table

    rotated = run(gw, "keys", "rotate", created["id"], "--grace", "0s")
    new_key = next(w for w in rotated.split() if w.startswith("sk-lmdeck-"))
    assert models_status(gw, key) == 401 and models_status(gw, new_key) == 200

    run(gw, "keys", "update", created["id"], "--role", "developer")
    assert json.loads(run(gw, "keys", "list", "--json"))[-1]["role"] == "developer"
    assert "Revoked" in run(gw, "keys", "revoke", created["id"])
    assert models_status(gw, new_key) == 401
    assert created["id"] not in run(gw, "keys", "list", "--active")


def test_budgets_and_spend(gw: GatewayProcess) -> None:
    created = json.loads(run(gw, "keys", "create", "--name", "spender", "--json"))
    out = run(gw, "budgets", "set", "--key", created["id"], "--period", "month", "--limit", "25", "--soft", "0.5")
    assert "$25.0000" in out
    budgets = json.loads(run(gw, "budgets", "list", "--json"))
    assert budgets[0]["subject_id"] == created["id"] and budgets[0]["soft_limit"] == 0.5
    assert "(none)" in run(gw, "budgets", "alerts")
    report = run(gw, "spend", "report", "--by", "team", "--period", "month")
    assert report.startswith("Spend by team since")
    assert json.loads(run(gw, "spend", "report", "--by", "tag", "--json"))["by"] == "tag"
    run(gw, "budgets", "delete", budgets[0]["id"])
    assert json.loads(run(gw, "budgets", "list", "--json")) == []


def test_errors_are_named_and_exit_nonzero(gw: GatewayProcess, tmp_path: Path) -> None:
    runner = CliRunner()
    denied = runner.invoke(app, ["keys", "list", "--base-url", gw.url, "--api-key", "sk-lmdeck-wrong"])
    assert denied.exit_code == 1 and "invalid" in denied.output
    missing = runner.invoke(app, ["keys", "revoke", "key_nope", "--base-url", gw.url, "--api-key", gw.admin_key])
    assert missing.exit_code == 1 and "key_nope" in missing.output
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--expires-in", "soon", "--base-url", gw.url])
    assert bad.exit_code == 2 and "duration" in bad.output
    both = runner.invoke(app, ["budgets", "set", "--limit", "1", "--base-url", gw.url])
    assert both.exit_code == 2 and "--key or --team" in both.output


def test_the_audit_log_through_the_api(gw: GatewayProcess) -> None:
    listed = run(gw, "audit", "list", "--action", "key.created")
    assert "key.created" in listed and "key:key_admin" in listed
    assert "chain intact" in run(gw, "audit", "verify", "--remote")
