"""``lmdeck routers train``: a router trained from a store's traces with the bundled MiniLM, written where
the gateway loads it, with its held-out report."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.db import Database
from lmdeck.evaluation.feedback.store import FeedbackEntry, FeedbackStore
from lmdeck.gateway.routing.learned import TrainedRouter
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore

SMALL, LARGE = "local:demo", "openai:gpt-4o"


def populate(data_dir: Path) -> None:
    db = Database(f"sqlite:///{data_dir / 'lmdeck.db'}")
    db.migrate()
    records, ratings = [], []
    questions = [(f"What is {a} + {b}?", SMALL, 1.0, 0) for a, b in zip(range(12), range(30, 42), strict=True)]
    questions += [(f"Reverse: {w}", SMALL, 1.0, 0) for w in ("planet", "garden", "silver", "orange", "window")]
    essays = ["the fall of Rome", "quantum gravity", "Baroque music", "the French revolution", "plate tectonics"]
    essays += ["medieval trade routes", "the history of jazz", "coral reef ecology", "Byzantine art", "the Silk Road"]
    questions += [(f"Write a detailed essay about {topic}.", SMALL, 0.0, 0) for topic in essays[:5]]
    questions += [(f"Write a detailed essay about {topic}.", LARGE, 1.0, 30_000) for topic in essays[5:]]
    for text, target, value, cost in questions:
        metadata = {}
        if target == LARGE:
            metadata["routing"] = {
                "strategy": "cascade",
                "tier": 1,
                "tiers": [{"target": SMALL, "outcome": "escalated"}],
            }
        record = TraceRecord(
            route="smart",
            target=target,
            cost_micros=cost,
            metadata=metadata,
            request_body={"model": "smart", "messages": [{"role": "user", "content": text}]},
        )
        records.append(record)
        ratings.append(
            FeedbackEntry(record.id, "thumbs", value, None, None, "user", None, "smart", None, None, None, None, None)
        )
    SQLTraceStore(db).insert(records)
    for entry in ratings:
        FeedbackStore(db).add(entry)


def test_train_writes_the_router_and_reports_its_held_out_accuracy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    populate(data_dir)
    config = tmp_path / "lmdeck.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data_dir),
                "routes": [
                    {
                        "name": "smart",
                        "strategy": "learned",
                        "targets": [{"provider": "local", "model": "demo"}, {"provider": "openai", "model": "gpt-4o"}],
                    }
                ],
            }
        )
    )
    result = CliRunner().invoke(
        cli, ["routers", "train", "smart", "--config", str(config), "--feedback", "thumbs", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(data_dir / "routers" / "smart.json")
    assert report["examples"] == 27 and report["train"] + report["test"] == 27
    assert report["tiers"] == {"0": 17, "1": 10}
    assert 0.0 <= report["accuracy"] <= 1.0 and report["expected_cost_saving"] is not None
    router = TrainedRouter.load(data_dir / "routers" / "smart.json")
    assert router.targets == [SMALL, LARGE] and len(router.coef[0]) == 384


def test_train_without_a_signal_names_the_options(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    populate(data_dir)
    routes = [{"name": "smart", "targets": ["local:demo", "openai:gpt-4o"]}]
    config = tmp_path / "lmdeck.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir), "routes": routes}))
    result = CliRunner().invoke(cli, ["routers", "train", "smart", "--config", str(config)])
    assert result.exit_code == 1 and "--feedback NAME or --score EVALUATOR" in result.output
