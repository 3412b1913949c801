"""Progressive delivery end to end, through a real ``lmdeck serve``: three releases, three outcomes.

    .venv/bin/python scripts/demo_release.py            # the full demo, narrated
    .venv/bin/python scripts/demo_release.py --fast --report out.json   # what the test runs

It starts two FAKE upstreams (OpenAI-compatible test servers: ``steady``, and ``flaky`` whose error
rate is changed at run time) and a gateway serving them plus the bundled demo model, then:

A. ``shout-v2``: a better prompt version for the demo model. ``shout@1`` ("Capitalize WORD") makes the
   demo model answer nonsense; ``shout@2`` ("Write WORD in capitals.") makes it answer the word in
   capitals. An online rule scores every answer with ``regex`` (all capitals). The release, declared
   in a file applied with ``lmdeck apply``, first runs in shadow (mirrored requests judged pairwise by
   the same evaluator), passes the gate, climbs every canary step and is promoted: the prompt's
   ``production`` label moves to version 2.
B. ``flaky-target``: route ``chat`` to a candidate route whose upstream fails a fifth of its requests.
   The hard guard (error rate over 10%) rolls it back automatically within two analysis intervals.
C. ``mixed``: a candidate that answers faster but fails slightly more often: latency passes, the
   error rate stays inconclusive, so the release holds; at its deadline it is aborted.

Analysis intervals are driven by calling the controller (``POST /api/releases/analyze``) after each
batch of traffic, with a tiny ``interval_s`` so that the sample counts (``min_samples``) decide; the
deadline of C is reached by analysing "as of" a time past it. The history of each release and the
audit log show every decision with its numbers. Exits 0 when each release ended as described.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from openai import OpenAI

from lmdeck.testing.servers import fake_upstream_process, gateway_process, openai_target

ADMIN_KEY = "sk-lmdeck-demo-release-Vb7Nm2Qw9Er4Ty6Ui1Op3As8Df5"
SHOUT = "shout=regex:pattern=^[A-Z]+$&full=true"
WORDS = [
    "planet", "river", "stone", "garden", "window", "silver", "forest", "candle", "market", "bridge",
    "pepper", "orange", "ladder", "rocket", "castle", "meadow", "harbor", "lantern", "pillow", "button",
    "velvet", "copper", "saddle", "thunder", "marble", "island", "valley", "kettle", "mirror", "feather",
]  # fmt: skip


_STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {text}", flush=True)


class Demo:
    """The gateway under demonstration and the calls the demo makes to it."""

    def __init__(self, url: str, fast: bool) -> None:
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=120.0)
        self.openai = OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120.0)
        self.fast = fast
        self.sent = 0

    def ask_demo(self, count: int) -> dict[str, int]:
        """``count`` requests rendering prompt ``shout``, each from its own user; the variants that served them."""
        numbers = range(self.sent + 1, self.sent + count + 1)
        self.sent += count

        def ask(n: int) -> str:
            raw = self.openai.chat.completions.with_raw_response.create(
                model="demo",
                messages=[],
                user=f"user-{n}",
                extra_body={"prompt": {"name": "shout", "variables": {"word": WORDS[n % len(WORDS)]}}},
            )
            return raw.headers.get("x-lmdeck-release", "none")

        seen: dict[str, int] = {}
        with ThreadPoolExecutor(4) as pool:  # the demo model answers a few requests at once
            for variant in pool.map(ask, numbers):
                seen[variant] = seen.get(variant, 0) + 1
        return seen

    def ask_chat(self, count: int) -> dict[str, int]:
        """``count`` requests to route ``chat``, each from its own user; the variants (or errors) seen."""
        seen: dict[str, int] = {}
        for _ in range(count):
            self.sent += 1
            response = self.http.post(
                "/v1/chat/completions",
                json={"model": "chat", "user": f"user-{self.sent}", "messages": [{"role": "user", "content": "hi"}]},
            )
            key = f"{response.headers.get('x-lmdeck-release', 'none')} {response.status_code}"
            seen[key] = seen.get(key, 0) + 1
        return seen

    def analyze(self, now: float | None = None) -> list[dict[str, Any]]:
        response = self.http.post("/api/releases/analyze", json={"now": now} if now is not None else {})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def release(self, name: str) -> dict[str, Any]:
        response = self.http.get(f"/api/releases/{name}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def decide(self, name: str, until: set[str], rounds: int, traffic: Any) -> dict[str, Any]:
        """Send a batch of traffic and analyse, until ``name``'s decision is in ``until`` (or ``rounds`` pass).

        Online scores and shadow pairs are written in the background: an analysis that still waits for
        samples is simply repeated after the next batch.
        """
        decision: dict[str, Any] = {}
        for _ in range(rounds):
            traffic()
            for _ in range(20):  # the background writers catch up within a few analyses
                decision = next((d for d in self.analyze() if d["release"] == name), {"decision": "gone"})
                if decision["decision"] != "wait":
                    break
                time.sleep(0.1)
            if decision["decision"] in until:
                return decision
        return decision

    def audit(self, name: str) -> list[dict[str, Any]]:
        response = self.http.get("/api/audit", params={"target": f"release:{name}", "limit": 1000})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data


def show(demo: Demo, name: str) -> dict[str, Any]:
    found = demo.release(name)
    say(f"  {name}: {found['state']}, candidate share {found['percent']:g}%")
    for event in found["history"]:
        say(f"    {event['action']:>13} -> {event['to_state']:<11} {event.get('reason') or ''}")
    return found


def config(steady: Any, flaky: Any) -> dict[str, Any]:
    return {
        "default_routes": False,
        "retry": {"backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0},
        "release_controller": {"analysis_tick_s": None},  # the demo drives the analysis itself
        "routes": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "chat", "targets": [openai_target(steady, max_retries=0)]},
            {"name": "chat-flaky", "targets": [openai_target(flaky, max_retries=0)]},
        ],
        "evaluation": {
            "online_rules": [{"name": "shout", "filter": {"route": "demo"}, "sample_rate": 1.0, "evaluators": [SHOUT]}]
        },
    }


def apply_file(fast: bool) -> dict[str, Any]:
    """What ``lmdeck apply`` syncs: prompt ``shout`` (two versions, production at 1) and release A."""
    samples = 6 if fast else 20
    return {
        "prompts": [
            {
                "name": "shout",
                "versions": [
                    {"version": 1, "text": "Capitalize {{ word }}", "variables": {"word": "string"}, "route": "demo"},
                    {
                        "version": 2,
                        "text": "Write {{ word }} in capitals.",
                        "variables": {"word": "string"},
                        "route": "demo",
                    },
                ],
                "labels": {"production": 1},
            }
        ],
        "releases": [
            {
                "name": "shout-v2",
                "route": "demo",
                "prompt": "shout",
                "candidate": {"prompt_version": 2},
                "shadow": {"sample": 1.0, "min_pairs": 6 if fast else 20, "judges": [SHOUT], "min_win_rate": 0.5},
                "strategy": {
                    "steps": [50, 100] if fast else [10, 25, 50, 100],
                    "interval_s": 0.001,
                    "min_samples": samples,
                    "mixture_scale": 1.0,
                    "deadline_s": 3600,
                },
                "metrics": [{"name": "score:shout", "direction": "higher", "tolerance": 0.1}],
                "hard_guards": [{"metric": "error_rate", "ceiling": 0.2, "min_samples": samples}],
            }
        ],
    }


def lmdeck_apply(url: str, path: Path) -> str:
    """Run ``lmdeck apply -f PATH`` against the gateway (the CLI, in a child process)."""
    import subprocess

    env = {**os.environ, "LMDECK_BASE_URL": url, "LMDECK_API_KEY": ADMIN_KEY}
    done = subprocess.run(
        [sys.executable, "-c", "from lmdeck.cli.main import main; main()", "apply", "-f", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lmdeck apply failed: {done.stdout}{done.stderr}")
    return done.stdout


def release_a(demo: Demo, url: str, workdir: Path) -> dict[str, Any]:
    say("A. shout-v2: a better prompt version, in shadow first, then every canary step")
    path = workdir / "shout.yaml"
    path.write_text(yaml.safe_dump(apply_file(demo.fast)))
    say("  $ lmdeck apply -f shout.yaml\n" + "\n".join("    " + line for line in lmdeck_apply(url, path).splitlines()))
    batch = 4 if demo.fast else 10
    shadow = demo.decide("shout-v2", {"shadow_pass", "rollback", "abort"}, 12, lambda: demo.ask_demo(batch))
    say(f"  shadow gate: {shadow['decision']} ({json.dumps(shadow.get('shadow', {}))})")
    steps = len(demo.release("shout-v2")["spec"]["strategy"]["steps"])
    for _ in range(steps):
        decision = demo.decide("shout-v2", {"promote", "rollback", "abort"}, 12, lambda: demo.ask_demo(2 * batch))
        say(f"  analysis: {decision['decision']}: {decision.get('reason', '')}")
        if decision["decision"] != "promote":
            break
    found = show(demo, "shout-v2")
    label = demo.http.get("/api/registry/prompts/shout").json()
    return {"release": found, "prompt": label}


def release_b(demo: Demo) -> dict[str, Any]:
    say("B. flaky-target: a candidate route whose upstream fails a fifth of its requests")
    spec = {
        "name": "flaky-target",
        "route": "chat",
        "candidate": {"route": "chat-flaky"},
        "strategy": {"steps": [50, 100], "interval_s": 0.001, "min_samples": 10, "mixture_scale": 1.0},
        "metrics": [{"name": "error_rate", "tolerance": 0.05}, {"name": "latency", "tolerance": 100}],
        "hard_guards": [{"metric": "error_rate", "ceiling": 0.1, "min_samples": 20}],
    }
    demo.http.post("/api/releases", json=spec).raise_for_status()
    demo.http.post("/api/releases/flaky-target/start", json={}).raise_for_status()
    intervals = []
    for interval in range(1, 6):
        seen = demo.ask_chat(60)
        decision = next(d for d in demo.analyze() if d["release"] == "flaky-target")
        intervals.append({"interval": interval, "traffic": seen, "decision": decision["decision"]})
        say(f"  interval {interval}: {seen} -> {decision['decision']}: {decision['reason']}")
        if decision["decision"] == "rollback":
            break
    return {"release": show(demo, "flaky-target"), "intervals": intervals}


def release_c(demo: Demo, flaky: Any) -> dict[str, Any]:
    say("C. mixed: faster but slightly more errors: holds, then aborts at its deadline")
    flaky.configure(error_rate=0.05, latency_ms=0)
    spec = {
        "name": "mixed",
        "route": "chat",
        "candidate": {"route": "chat-flaky"},
        "strategy": {"steps": [50, 100], "interval_s": 0.001, "min_samples": 10, "deadline_s": 600},
        "metrics": [{"name": "latency", "tolerance": 5}, {"name": "error_rate", "tolerance": 0.02}],
    }
    demo.http.post("/api/releases", json=spec).raise_for_status()
    started = demo.http.post("/api/releases/mixed/start", json={}).json()
    decisions = []
    for interval in range(1, 3):
        seen = demo.ask_chat(40)
        decision = next(d for d in demo.analyze() if d["release"] == "mixed")
        decisions.append(decision["decision"])
        say(f"  interval {interval}: {seen} -> {decision['decision']}: {decision['reason']}")
    late = started["started_at"] + spec["strategy"]["deadline_s"] + 1  # type: ignore[index]
    final = next(d for d in demo.analyze(now=late) if d["release"] == "mixed")
    decisions.append(final["decision"])
    say(f"  past the deadline -> {final['decision']}: {final['reason']}")
    return {"release": show(demo, "mixed"), "decisions": decisions}


def run(fast: bool, workdir: Path) -> dict[str, Any]:
    with (
        fake_upstream_process(latency_ms=20) as steady,
        fake_upstream_process(error_rate=0.2, seed=7, latency_ms=20) as flaky,
        gateway_process(config(steady, flaky), data_dir=workdir / "gateway", admin_key=ADMIN_KEY, timeout=300) as gw,
    ):
        demo = Demo(gw.url, fast)
        report: dict[str, Any] = {"A": release_a(demo, gw.url, workdir)}
        report["B"] = release_b(demo)
        report["C"] = release_c(demo, flaky)
        report["audit"] = {name: demo.audit(name) for name in ("shout-v2", "flaky-target", "mixed")}
        report["metrics"] = [
            line for line in demo.http.get("/metrics").text.splitlines() if line.startswith("lmdeck_release_")
        ]
        return report


def outcome_problems(report: dict[str, Any]) -> list[str]:
    """What differs from the story the demo tells (empty when each release ended as described)."""
    problems = []
    wanted = {"A": "promoted", "B": "rolled_back", "C": "aborted"}
    for key, state in wanted.items():
        got = report[key]["release"]["state"]
        if got != state:
            problems.append(f"release {key} ended {got}, expected {state}")
    rolled = [i["interval"] for i in report["B"]["intervals"] if i["decision"] == "rollback"]
    if not rolled or rolled[0] > 2:
        problems.append(f"release B was not rolled back within two intervals: {report['B']['intervals']}")
    if "hold" not in report["C"]["decisions"]:
        problems.append(f"release C never held: {report['C']['decisions']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="fewer samples per step (what the test runs)")
    parser.add_argument("--report", type=Path, help="write the outcome, histories and audit entries here (JSON)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lmdeck-demo-release-") as tmp:
        report = run(args.fast, Path(tmp))
    problems = outcome_problems(report)
    if args.report is not None:
        args.report.write_text(json.dumps({**report, "problems": problems}, indent=2))
    for problem in problems:
        say(f"NOT AS EXPECTED: {problem}")
    say("done: A promoted, B rolled back, C aborted" if not problems else "done, with problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
