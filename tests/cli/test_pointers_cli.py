"""``lmdeck models`` and ``lmdeck prompts`` pointer commands against a real ``lmdeck serve``: one
implementation (:mod:`lmdeck.cli.pointers`), each kind in its own words."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process({"default_routes": False}, data_dir=tmp_path_factory.mktemp("pointers-cli")) as started:
        yield started


def run(gw: GatewayProcess, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [*args, "--base-url", gw.url, "--api-key", gw.admin_key])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


@dataclass(frozen=True)
class Kind:
    group: str
    word: str
    plural: str
    #: Adds version ``n`` of ``name``.
    add_version: Callable[[GatewayProcess, str, int], None]


def _model_version(gw: GatewayProcess, name: str, n: int) -> None:
    run(gw, "models", "add-version", name, "--provider", "openai", "--model", f"upstream-{n}")


def _prompt_version(gw: GatewayProcess, name: str, n: int) -> None:
    run(gw, "prompts", "create", name, "--text", f"v{n} {{{{ who }}}}", "--var", "who:string")


KINDS = [Kind("models", "alias", "aliases", _model_version), Kind("prompts", "label", "labels", _prompt_version)]


@pytest.mark.parametrize("kind", KINDS, ids=[k.group for k in KINDS])
def test_move_list_roll_back_and_read_the_history(gw: GatewayProcess, kind: Kind) -> None:
    name = f"{kind.group}-bot"
    if kind.group == "models":
        run(gw, "models", "register", name)
    for n in (1, 2):
        kind.add_version(gw, name, n)

    assert run(gw, kind.group, kind.word, name, "production", "1").strip() == f"{name}@production: unset → v1"
    moved = run(gw, kind.group, kind.word, name, "production", "2", "--reason", "v2 passed")
    assert moved.strip() == f"{name}@production: v1 → v2"
    again = run(gw, kind.group, kind.word, name, "production", "2")
    assert again.strip() == f"{name}@production already points at v2"
    stale = run(gw, kind.group, kind.word, name, "production", "1", "--expected-version", "1", ok=False)
    assert "points at version 2" in stale

    listed = run(gw, kind.group, "list")
    assert kind.plural.upper() in listed.splitlines()[0] and "production=v2" in listed
    entry = next(e for e in json.loads(run(gw, kind.group, "list", "--json")) if e["name"] == name)
    assert entry[kind.plural] == {"production": 2}

    back = run(gw, kind.group, "rollback", name, "--reason", "errors up")
    assert back.strip() == f"{name}@production: v2 → v1 (rolled back)"

    table = run(gw, kind.group, "history", name, f"--{kind.word}", "production").splitlines()
    assert table[0].split()[:4] == ["WHEN", kind.word.upper(), "FROM", "TO"]
    assert len(table) == 4 and "errors up" in table[1] and "v2 passed" in table[2]
    moves = json.loads(run(gw, kind.group, "history", name, "--limit", "2", "--json"))
    assert [(m[kind.word], m["from_version"], m["to_version"], m["action"]) for m in moves] == [
        ("production", 2, 1, "rollback"),
        ("production", 1, 2, "move"),
    ]
    none = run(gw, kind.group, "history", name, f"--{kind.word}", "staging")
    assert none.strip() == f"{name} has no {kind.word} moves yet"


def test_each_kind_keeps_its_own_words() -> None:
    runner = CliRunner()
    models = runner.invoke(app, ["models", "--help"]).output
    prompts = runner.invoke(app, ["prompts", "--help"]).output
    assert " alias " in models and " label " not in models and " register " in models
    assert " label " in prompts and " alias " not in prompts and " render " in prompts
    assert "--alias" in runner.invoke(app, ["models", "rollback", "--help"]).output
    assert "--label" in runner.invoke(app, ["prompts", "history", "--help"]).output
