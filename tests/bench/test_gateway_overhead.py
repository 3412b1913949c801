"""The gateway overhead benchmark's command line, core pinning and tables (no load is run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gateway_overhead.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gateway_overhead_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run(bench: ModuleType, rps: float, p50_ms: float, p99_ms: float) -> object:
    return bench.Run(
        requests=int(rps * 10),
        duration_us=10_000_000,
        errors=0,
        status_errors=0,
        p50_us=int(p50_ms * 1000),
        p90_us=int(p50_ms * 1500),
        p99_us=int(p99_ms * 1000),
        max_us=int(p99_ms * 2000),
    )


def test_defaults_keep_the_plain_run(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert (args.duration, args.rates, args.workers, args.peers, args.scaling, args.stream) == (
        10.0,
        "100,500",
        1,
        [],
        False,
        True,
    )


def test_peers_flag_alone_means_both_and_a_list_picks(bench: ModuleType) -> None:
    assert bench.parse_args(["--peers"]).peers == ["litellm", "portkey"]
    assert bench.parse_args(["--peers", "portkey"]).peers == ["portkey"]


@pytest.mark.parametrize("argv", [["--peers", "nginx"], ["--workers", "0"], ["--rates", "100,-5"], ["--rates", "x"]])
def test_bad_arguments_stop_with_usage(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        bench.parse_args(argv)
    assert stopped.value.code == 2


def test_core_plan_gives_lmdeck_its_own_cores_when_there_are_enough(bench: ModuleType) -> None:
    two = bench.core_plan(1, 2)
    assert (two.lmdeck, two.load, two.upstream, two.shared) == ("1", "0", "0", False)
    many = bench.core_plan(4, 8)
    assert (many.lmdeck, many.load, many.upstream, many.shared) == ("2-5", "0", "1", False)
    crowded = bench.core_plan(2, 2)
    assert (crowded.lmdeck, crowded.shared) == ("0-1", True)
    assert "shares its cores" in crowded.note()


def test_scaling_ratio_and_percentile(bench: ModuleType) -> None:
    assert bench.scaling_ratio(1600, 1000, 2) == pytest.approx(0.8)
    assert bench.percentile([], 50) == 0.0
    assert bench.percentile(list(range(1, 101)), 50) == 50
    assert bench.percentile(list(range(1, 101)), 99) == 99


def test_table_with_lmdeck_alone_keeps_its_columns(bench: ModuleType) -> None:
    m = bench.Measured(loads=["100 rps"], paths=["direct", "lmdeck"])
    m.runs[("100 rps", "direct")] = run(bench, 100, 1.0, 3.0)
    m.runs[("100 rps", "lmdeck")] = run(bench, 90, 11.0, 33.0)
    lines = bench.format_table(m)
    assert lines[2].split() == ["100", "rps", "lmdeck", "90", "11.00", "16.50", "33.00", "0"]
    assert lines[4].split() == ["load", "added", "p50", "ms", "added", "p99", "ms", "p99", "ratio", "rps", "ratio"]
    assert lines[5].split() == ["100", "rps", "10.00", "30.00", "11.00", "0.90"]


def test_table_names_each_peer_and_says_why_one_did_not_run(bench: ModuleType) -> None:
    m = bench.Measured(loads=["saturation"], paths=["direct", "lmdeck", "litellm", "portkey"])
    m.runs[("saturation", "direct")] = run(bench, 8000, 3.0, 6.0)
    m.runs[("saturation", "lmdeck")] = run(bench, 400, 60.0, 250.0)
    m.runs[("saturation", "portkey")] = run(bench, 320, 90.0, 340.0)
    m.not_run["litellm"] = "pip install 'litellm[proxy]' failed: no network"
    text = "\n".join(bench.format_table(m))
    assert "litellm     not run: pip install 'litellm[proxy]' failed: no network" in text
    assert "saturation  portkey            87.00" in text


def test_stream_table_reports_added_ttft_and_per_chunk_time(bench: ModuleType) -> None:
    m = bench.Measured(paths=["direct", "lmdeck", "portkey"])
    m.streams["direct"] = bench.StreamRun(ttft_us=[1000.0] * 10, total_us=[3000.0] * 10, chunks=[64] * 10)
    m.streams["lmdeck"] = bench.StreamRun(ttft_us=[8000.0] * 10, total_us=[9400.0] * 10, chunks=[64] * 10)
    failed = bench.StreamRun()
    failed.fail('500 {"message": "Something went wrong"}')
    m.streams["portkey"] = failed
    lines = bench.format_stream_table(m, 50.0)
    assert any(line.startswith("portkey     no stream completed (1 errors): 500") for line in lines)
    added = next(line for line in lines if line.startswith("lmdeck") and len(line.split()) == 5)
    assert added.split() == ["lmdeck", "7.00", "7.00", "8.00", "100.0"]
