"""Annotation queues against a real ``lmdeck serve``: a queue declared in a file (``lmdeck apply``, kind
AnnotationQueue), traces the OpenAI SDK produced sent to it, claimed, labelled and exported with
``lmdeck queues``; the correction is a row of the exported dataset version."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import openai
import yaml
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import TEST_SETTINGS, FakeUpstreamProcess, gateway_process, openai_target

QUEUE = {"name": "review", "categories": ["wrong", "ok"], "dataset": "review-fixes", "rule": {"guardrail": True}}


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_queue_from_a_file_is_labelled_and_exported_with_the_cli(
    tmp_path: Path, fake_upstream: FakeUpstreamProcess
) -> None:
    config = {**TEST_SETTINGS, "routes": [{"name": "chat", "targets": [openai_target(fake_upstream)]}]}
    with gateway_process(config, data_dir=tmp_path / "gw") as gw:
        env = {"LMDECK_BASE_URL": gw.url, "LMDECK_API_KEY": gw.admin_key}
        declared = tmp_path / "queues.yaml"
        declared.write_text(yaml.safe_dump({"evaluation": {"annotation_queues": [QUEUE]}}))
        assert "AnnotationQueue review: create" in cli(env, "apply", "-f", str(declared))
        assert cli(env, "apply", "-f", str(declared)).strip() == "no changes"

        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)
        trace_ids = []
        for n in range(2):
            request_id = f"ann-{uuid.uuid4().hex}"
            client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": f"question {n}"}],
                extra_headers={"x-request-id": request_id},
            )
            trace_ids.append(gw.trace(request_id)["id"])
        assert "added 2 trace(s), 0 already queued" in cli(env, "queues", "add", "review", *trace_ids)
        assert "added 0 trace(s), 2 already queued" in cli(env, "queues", "add", "review", *trace_ids)

        item = json.loads(cli(env, "queues", "next", "review", "--json"))
        assert item["trace_id"] == trace_ids[0]
        assert item["trace"]["input"] == {"messages": [{"role": "user", "content": "question 0"}]}
        labelled = cli(
            env, "queues", "label", "review", item["id"], "--claim", item["claim"], "--category", "wrong",
            "--correction", "the right answer",
        )  # fmt: skip
        assert f"labelled item {item['id']}" in labelled
        refused = CliRunner().invoke(
            app, ["queues", "label", "review", item["id"], "--claim", item["claim"], "--score", "1"], env=env
        )
        assert refused.exit_code != 0 and "labelled already" in refused.output
        listed = cli(env, "queues", "list")
        assert "review" in listed and "review-fixes" in listed
        assert "dataset review-fixes v1: 1 row(s)" in cli(env, "queues", "export", "review")

        rows = httpx.get(
            f"{gw.url}/api/registry/datasets/review-fixes/versions/1/rows", headers=gw.headers(), timeout=30
        ).json()["data"]
        assert [(r["trace_id"], r["expected"]) for r in rows] == [(trace_ids[0], "the right answer")]
