"""A real ``lmdeck serve`` serving LoRA adapters on the demo model, through the OpenAI SDK.

A registry version ``{provider: local, model: demo, adapter: DIR}`` behind ``registry:counter@candidate``
and a route target with ``options.adapter`` answer as the adapter does; who may register which
directory is checked by the gateway; a missing adapter directory is a 400 that names the fix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import BadRequestError, OpenAI

from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.random_adapter import write_random_adapter
from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Reverse: lmdeck"}]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-adapters")
    data_dir = root / "data"
    ours = write_random_adapter(DEMO_MODEL_DIR, data_dir / "finetune" / "jobs" / "ft-1" / "adapter", seed=1)
    theirs = write_random_adapter(DEMO_MODEL_DIR, root / "elsewhere" / "adapter", seed=2)
    return {"data": data_dir, "ours": ours, "theirs": theirs}


@pytest.fixture(scope="module")
def served(dirs: dict[str, Path]) -> Iterator[GatewayProcess]:
    config = {
        "default_routes": False,
        "local": {"device": "cpu", "threads": 1, "max_adapters": 2},
        "routes": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {
                "name": "direct",
                "targets": [{"provider": "local", "model": "demo", "options": {"adapter": str(dirs["ours"])}}],
            },
            {"name": "counter", "targets": ["registry:counter@candidate"]},
        ],
    }
    with gateway_process(config, data_dir=dirs["data"], env={"LMDECK_LOCAL_DEVICE": "cpu"}, timeout=240) as gw:
        yield gw


@pytest.fixture(scope="module")
def admin(served: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=served.headers(), timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def developer(served: GatewayProcess, admin: httpx.Client) -> Iterator[httpx.Client]:
    team = admin.post("/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert team.status_code in (200, 201), team.text
    key = admin.post("/api/keys", json={"name": "dev", "role": "developer", "team_id": team.json()["id"]})
    assert key.status_code in (200, 201), key.text
    # The route `counter` (the admin's) follows the model: the admin registers it for the team.
    registered = admin.post("/api/registry/models", json={"name": "counter", "team": team.json()["id"]})
    assert registered.status_code in (200, 201), registered.text
    with httpx.Client(base_url=served.url, headers=served.headers(key.json()["key"]), timeout=60) as http:
        yield http


def answer(client: OpenAI, model: str) -> str:
    response = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=12)  # type: ignore[arg-type]
    return response.choices[0].message.content or ""


def version(dev_or_admin: httpx.Client, adapter: Path | str) -> httpx.Response:
    spec = {"provider": "local", "model": "demo", "base_model": "demo", "adapter": str(adapter)}
    return dev_or_admin.post("/api/registry/models/counter/versions", json=spec)


def test_a_registry_version_with_an_adapter_is_routable(
    served: GatewayProcess, admin: httpx.Client, developer: httpx.Client, dirs: dict[str, Path]
) -> None:
    # A developer may register only the adapter of one of its team's fine-tuning jobs: not a job directory
    # no job of its team owns (ft-1 has no job behind it), a directory elsewhere, nor one reached through `..`
    # (tests/finetune/jobs/test_jobs_api.py registers a real job's adapter) ...
    for path in (dirs["ours"], dirs["theirs"], f"{dirs['data']}/finetune/../../elsewhere/adapter"):
        refused = version(developer, path)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "adapter_path_forbidden"
        assert refused.json()["error"]["param"] == "adapter"
    ours = version(admin, dirs["ours"])  # ... an admin may name any directory
    assert ours.status_code in (200, 201), ours.text
    theirs = version(admin, dirs["theirs"])
    assert theirs.status_code in (200, 201), theirs.text
    moved = admin.put("/api/registry/models/counter/aliases/candidate", json={"version": ours.json()["version"]})
    assert moved.status_code == 200, moved.text

    client = OpenAI(base_url=served.base_url, api_key=served.admin_key, max_retries=0, timeout=120)
    base = answer(client, "demo")
    tuned = answer(client, "counter")
    # The same adapter served two ways answers the same; the base model answers differently.
    assert tuned == answer(client, "direct")
    assert tuned != base
    admin.put("/api/registry/models/counter/aliases/candidate", json={"version": theirs.json()["version"]})
    other = answer(client, "counter")
    assert other not in (tuned, base)
    assert answer(client, "demo") == base  # base rows never see an adapter


def test_a_missing_adapter_directory_is_a_400_naming_the_fix(
    served: GatewayProcess, admin: httpx.Client, developer: httpx.Client, dirs: dict[str, Path]
) -> None:
    missing = version(admin, dirs["data"] / "finetune" / "jobs" / "never" / "adapter")
    assert missing.status_code in (200, 201), missing.text
    admin.put("/api/registry/models/counter/aliases/candidate", json={"version": missing.json()["version"]})
    client = OpenAI(base_url=served.base_url, api_key=served.admin_key, max_retries=0, timeout=120)
    with pytest.raises(BadRequestError) as refused:
        answer(client, "counter")
    assert refused.value.status_code == 400
    assert "no such directory; point `adapter` at a directory holding adapter_config.json" in str(refused.value)
