"""The gateway profile's summary of py-spy stacks (no load is run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def profile() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("gateway_profile_bench", BENCH / "gateway_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_samples_count_toward_where_their_innermost_frame_is(profile: ModuleType) -> None:
    main = "<module> (<string>:1);Runner.run (asyncio/runners.py:118)"
    assert profile.category([main, "ClientSession._request (/x/site-packages/aiohttp/client.py:819)"]) == (
        "aiohttp (upstream client)"
    )
    assert profile.category([main, "RateLimit.__call__ (/x/src/lmdeck/policy/ratelimit_step.py:40)"]) == (
        "lmdeck pipeline steps"
    )
    assert profile.category([main, "BodyLimitMiddleware.__call__ (/x/src/lmdeck/app/middleware/body_limit.py:55)"]) == (
        "lmdeck middleware"
    )
    writer = "Thread._bootstrap (threading.py:1002);StoreWriter._run (/x/src/lmdeck/tracing/writer.py:137)"
    assert profile.category(writer.split(";")) == "store writer thread"
    assert profile.category(["Runner.run (uvloop)"]) == "other (event loop, C code)"


def test_the_summary_gives_shares_and_top_frames(profile: ModuleType) -> None:
    lines = [
        "<module> (<string>:1);ClientSession._request (/v/site-packages/aiohttp/client.py:819) 30",
        "<module> (<string>:1);RateLimit.__call__ (/r/src/lmdeck/policy/ratelimit_step.py:40) 10",
        "not a stack line",
    ]
    out = profile.summarize(lines)
    assert out[0] == "40 samples"
    assert "| aiohttp (upstream client) | 75.0 % |" in out
    assert "| lmdeck pipeline steps | 25.0 % |" in out
    assert "| ClientSession._request (aiohttp/client.py:819) | 75.0 % |" in out
    assert profile.summarize([]) == ["no samples"]
