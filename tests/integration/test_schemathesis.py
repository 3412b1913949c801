"""Schemathesis over the served OpenAPI document of a real ``lmdeck serve``: no input is answered
with a 5xx or left without an answer.

The run generates requests for every operation (the document's examples, boundary and
negative values, random ones, then sequences that follow the links between operations), bounded by ``MAX_EXAMPLES`` per operation, and fails on
any 5xx (but for a 502/503/504 reporting the failure of an upstream on a route the run itself
created: see ``schemathesis_hooks.py``) or any request that gets no answer within
``REQUEST_TIMEOUT`` seconds. The gateway
routes ``demo`` and ``embed`` (the names the document's examples use) to the fake upstream.
Calls that can take a key's access away carry a sacrificial admin key (see ``schemathesis_hooks.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, openai_target

pytest.importorskip("schemathesis")

MAX_EXAMPLES = 20
REQUEST_TIMEOUT = 30
HERE = Path(__file__).parent


def test_no_input_gets_a_server_error_or_no_answer(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess, tmp_path: Path
) -> None:
    gw = gateway(
        [
            {"name": "demo", "targets": [openai_target(fake_upstream)]},
            {"name": "embed", "kind": "embeddings", "targets": [openai_target(fake_upstream, "fake-embed")]},
        ],
        fresh=True,
    )
    bootstrap = gw.headers()
    run = httpx.post(f"{gw.url}/api/keys", json={"name": "schemathesis run", "role": "admin"}, headers=bootstrap)
    run.raise_for_status()
    admin_id = httpx.get(f"{gw.url}/api/keys", headers=bootstrap).json()["data"]
    protected = {run.json()["id"], *(k["id"] for k in admin_id if k["name"] == "bootstrap admin")}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "LMDECK_ST_BASE_URL": gw.url,
        "LMDECK_ST_BOOTSTRAP_KEY": gw.admin_key,
        "LMDECK_ST_RUN_KEY": run.json()["key"],
        "LMDECK_ST_PROTECTED_KEY_IDS": ",".join(sorted(protected)),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{gw.url}/openapi.json",
        "--checks",
        "no_gateway_fault",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        # One worker: two threads generating cases at once can trip CPython 3.11's AST recursion
        # counter (python/cpython#106905, a SystemError inside the generator, not a gateway fault).
        "--workers",
        "1",
        "--seed",
        "20261130",
        "--warnings",
        "off",
        "--no-color",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"schemathesis found server errors or hangs:\n{output[-20000:]}"
    assert gw.alive(), gw.log()
    # The document's examples reached the upstream through each inference route: the run went past validation.
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert fake_upstream.count(path) > 0, f"no generated request reached the upstream on {path}"
