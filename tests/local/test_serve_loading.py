"""``lmdeck serve`` loads its local models in the background: not ready until they are, and the first request
sent as soon as it listens is answered (it waits for the load).

Regression: models loaded on their first request, which stalled for seconds with nothing said, while
``/health/ready`` already answered 200.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from lmdeck.testing.servers import start_gateway

pytestmark = pytest.mark.integration

LOCAL_MODELS = {"demo", "all-minilm-l6-v2"}


def test_ready_flips_once_the_models_are_loaded_and_the_first_request_is_answered(tmp_path: Path) -> None:
    gw = start_gateway({}, data_dir=tmp_path, env={"LMDECK_LOCAL_DEVICE": "cpu"}, wait_for="/health/live")
    try:
        first = httpx.get(f"{gw.url}/health/ready", timeout=10)
        client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=120)
        seen: list[tuple[int, dict[str, Any]]] = []
        with ThreadPoolExecutor(1) as pool:
            asked = pool.submit(
                client.chat.completions.create,
                model="demo",
                messages=[{"role": "user", "content": "What is the capital of France?"}],
                temperature=0,
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ready = httpx.get(f"{gw.url}/health/ready", timeout=10)
                seen.append((ready.status_code, ready.json()))
                if ready.status_code == 200:
                    break
                time.sleep(0.05)
            answer = asked.result(timeout=120)
        # Serving starts before the models are loaded (PyTorch alone takes seconds to import).
        assert first.status_code == 503, first.text
        # Which model is still loading at the first look depends on the machine's speed: one of them is.
        assert first.json()["loading"] and set(first.json()["loading"]) <= LOCAL_MODELS
        assert seen[-1] == (200, {"status": "ok"})
        for status, body in seen[:-1]:
            assert status == 503 and body["status"] == "unavailable"
            assert body["loading"] and set(body["loading"]) <= LOCAL_MODELS
            assert body["problems"] == [f"local model {name!r} is loading" for name in body["loading"]]
        assert answer.choices[0].message.content == "Paris"
        log = gw.log()
        loading, ready_line = log.find("loading demo model…"), re.search(r"demo model ready in \d+\.\d s", log)
        assert loading >= 0 and ready_line is not None and loading < ready_line.start(), log
    finally:
        gw.stop()
