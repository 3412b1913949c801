"""What the response cache costs and what it gets right.

    python bench/cache.py                        # semantic lookup at 10k and 100k entries + precision
    python bench/cache.py --sizes 10000 --queries 2000
    python bench/cache.py --libraries            # also usearch and faiss-cpu, if installed, beside hnswlib
    python bench/cache.py --skip lookup,precision --requests 500   # the gateway section only

Sections:

- ``gateway``: one ``lmdeck serve`` in front of the FAKE upstream (zero latency), driven by one
  client, requests interleaved so the machine's noise hits every series alike: an exact hit (the
  same request again), a miss (a new text: key, lookup, upstream call, keeping the answer), and on
  a route with the semantic cache a semantic hit (a paraphrase) and a semantic miss (a new text,
  embedded and searched, then asked upstream). p50/p99 per series, in ms, as the client saw them.

- ``lookup``: :class:`lmdeck.cache.semantic.index.VectorIndex` (hnswlib) holding N entries in one
  partition (the worst case: one tenant, one shape), searched for the best match of each query;
  p50/p99 of one search, the build time, and recall@1 against exact search. Vectors are
  synthetic unit vectors in clusters (384 dimensions, MiniLM's), since embedding 100k texts
  would take this machine longer than the index does; a query is a stored vector plus noise that
  leaves it at cosine ~0.9 to that vector (a paraphrase near the threshold).
  Beside it, the p50/p99 of embedding one short query with the bundled MiniLM through
  :class:`~lmdeck.local.embeddings.EmbeddingBatcher`, the other half of a semantic lookup.
- ``precision``: the paraphrase set (tests/data/cache/paraphrases.jsonl: pairs that should match
  and near-misses differing in a number, negation, entity, unit or topic) embedded with MiniLM.
  The threshold is chosen on the ``tune`` split only (highest precision, then recall); precision
  and recall are reported on the held-out ``test`` split, with and without the term verifier
  (:class:`lmdeck.cache.semantic.verify.TermVerifier`), beside the configured default threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lmdeck.cache.semantic.index import VectorIndex
from lmdeck.cache.semantic.verify import TermVerifier
from lmdeck.settings import SemanticCacheConfig

PARAPHRASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "cache" / "paraphrases.jsonl"
DIMENSIONS = 384


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(n // 50, 10), DIMENSIONS)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries_near(x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    # noise of norm ~0.48 puts a query at cosine ~0.9 to its stored vector: a paraphrase near the threshold
    q = x[rng.integers(0, len(x), count)] + 0.025 * rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def timed(search: Callable[[np.ndarray], int], queries: np.ndarray, truth: np.ndarray) -> tuple[list[float], float]:
    latencies: list[float] = []
    right = 0
    for query, expected in zip(queries, truth, strict=True):
        start = time.perf_counter()
        found = search(query)
        latencies.append((time.perf_counter() - start) * 1000.0)
        right += found == int(expected)
    return latencies, right / len(queries)


def lookup_section(sizes: list[int], count: int, libraries: bool) -> None:
    rng = np.random.default_rng(0)
    print("== semantic lookup: one search of one partition (ms) ==")
    print(f"{'entries':>8} {'library':<10} {'build s':>8} {'p50':>7} {'p99':>7} {'recall@1':>8}")
    for n in sizes:
        x = clustered(n, rng)
        queries = queries_near(x, count, rng)
        truth = np.argmax(queries @ x.T, axis=1)
        start = time.perf_counter()
        index = VectorIndex(DIMENSIONS)
        for label, vector in enumerate(x):
            index.add("p", label, vector)
        build = time.perf_counter() - start
        candidates: dict[str, tuple[float, Callable[[np.ndarray], int]]] = {
            "hnswlib": (build, lambda q, ix=index: ix.search("p", q, k=1)[0][0])
        }
        if libraries:
            candidates.update(other_libraries(x))
        for name, (seconds, search) in candidates.items():
            latencies, recall = timed(search, queries, truth)
            print(
                f"{n:>8} {name:<10} {seconds:>8.1f} {percentile(latencies, 50):>7.3f} "
                f"{percentile(latencies, 99):>7.3f} {recall:>8.3f}",
                flush=True,
            )


def other_libraries(x: np.ndarray) -> dict[str, tuple[float, Callable[[np.ndarray], int]]]:
    """usearch and faiss-cpu HNSW graphs with the same M/ef as VectorIndex, when installed."""
    out: dict[str, tuple[float, Callable[[np.ndarray], int]]] = {}
    ids = np.arange(len(x))
    try:
        from usearch.index import Index

        start = time.perf_counter()
        u = Index(ndim=DIMENSIONS, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
        u.add(ids, x, threads=1)
        out["usearch"] = (time.perf_counter() - start, lambda q: int(u.search(q, 1).keys[0]))
    except ImportError:
        print("usearch not installed: pip install usearch", file=sys.stderr)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        start = time.perf_counter()
        graph = faiss.IndexHNSWFlat(DIMENSIONS, 16, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 128
        mapped = faiss.IndexIDMap2(graph)
        mapped.add_with_ids(x, ids)
        graph.hnsw.efSearch = 64
        out["faiss-hnsw"] = (time.perf_counter() - start, lambda q: int(mapped.search(q[None], 1)[1][0][0]))
    except ImportError:
        print("faiss-cpu not installed: pip install faiss-cpu", file=sys.stderr)
    out["numpy-exact"] = (0.0, lambda q: int(np.argmax(x @ q)))
    return out


def embed_section(count: int) -> np.ndarray | None:
    """Embeds one query at a time through the batcher (its p50/p99), then the paraphrase set."""
    try:
        import torch

        from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder, minilm_dir
    except ImportError:
        print("the local extra is not installed: pip install 'lmdeck[local]'", file=sys.stderr)
        return None
    embedder = SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu"))
    batcher = EmbeddingBatcher(embedder)
    rows = [json.loads(line) for line in PARAPHRASES.read_text().splitlines()]

    async def run() -> tuple[list[float], np.ndarray]:
        latencies: list[float] = []
        for n in range(count):
            start = time.perf_counter()
            await batcher.embed([rows[n % len(rows)]["b"]])
            latencies.append((time.perf_counter() - start) * 1000.0)
        texts = [r["a"] for r in rows] + [r["b"] for r in rows]
        vectors, _ = await batcher.embed(texts)
        return latencies, np.asarray(vectors, dtype=np.float32)

    latencies, vectors = asyncio.run(run())
    batcher.close()
    print(
        f"== embedding one query (MiniLM, CPU): p50 {percentile(latencies, 50):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms over {count} =="
    )
    half = len(rows)
    return np.sum(vectors[:half] * vectors[half:], axis=1)


def scores(
    rows: list[dict[str, object]], sims: np.ndarray, ok: np.ndarray, split: str, t: float
) -> tuple[float, float, Counter[str]]:
    idx = [i for i, r in enumerate(rows) if r["split"] == split]
    accepted = [i for i in idx if sims[i] >= t and ok[i]]
    tp = sum(1 for i in accepted if rows[i]["match"])
    wrong = Counter(str(rows[i]["kind"]) for i in accepted if not rows[i]["match"])
    positives = sum(1 for i in idx if rows[i]["match"])
    precision = tp / len(accepted) if accepted else 1.0
    return precision, tp / positives, wrong


def precision_section(sims: np.ndarray) -> None:
    rows = [json.loads(line) for line in PARAPHRASES.read_text().splitlines()]
    verifier = TermVerifier()
    verdicts = {"none": np.ones(len(rows), dtype=bool), "terms": np.asarray([verifier(r["a"], r["b"]) for r in rows])}
    default = SemanticCacheConfig()
    kinds = Counter((r["split"], r["match"]) for r in rows)
    print(
        f"== precision on {len(rows)} pairs: tune {kinds['tune', True]}+{kinds['tune', False]}, "
        f"test {kinds['test', True]}+{kinds['test', False]} (should match + should not) =="
    )
    grid = [round(t, 2) for t in np.arange(0.70, 0.99, 0.01)]
    for name, ok in verdicts.items():
        best = max(grid, key=lambda t: (scores(rows, sims, ok, "tune", t)[0], scores(rows, sims, ok, "tune", t)[1]))
        for label, t in (("chosen on tune", best), ("default", default.threshold)):
            tune_p, tune_r, _ = scores(rows, sims, ok, "tune", t)
            test_p, test_r, wrong = scores(rows, sims, ok, "test", t)
            print(
                f"verifier={name:<5} threshold {t:.2f} ({label}): tune precision {tune_p:.3f} recall {tune_r:.3f}; "
                f"test precision {test_p:.3f} recall {test_r:.3f}; test false hits {dict(wrong)}"
            )
    print(f"(the default: threshold {default.threshold}, verify_terms {default.verify_terms})")


def gateway_section(requests: int) -> None:
    import tempfile
    import uuid

    import httpx

    from lmdeck.testing.servers import fake_upstream_process, gateway_process, openai_target

    series: dict[str, list[float]] = {"exact hit": [], "miss": [], "semantic hit": [], "semantic miss": []}
    with tempfile.TemporaryDirectory() as tmp, fake_upstream_process(latency_ms=0, log_dir=tmp) as fake:
        routes = [
            {"name": "exact", "targets": [openai_target(fake, max_retries=0)], "cache": {"enabled": True}},
            {
                "name": "semantic",
                "targets": [openai_target(fake, max_retries=0)],
                "cache": {"enabled": True, "semantic": {"enabled": True}},
            },
        ]
        with gateway_process({"default_routes": False, "routes": routes}, data_dir=Path(tmp) / "gw") as gw:
            client = httpx.Client(base_url=gw.base_url, headers=gw.headers(), timeout=60)

            def ask(route: str, text: str) -> tuple[float, str]:
                body = {"model": route, "messages": [{"role": "user", "content": text}], "temperature": 0}
                start = time.perf_counter()
                response = client.post("/chat/completions", json=body)
                elapsed = (time.perf_counter() - start) * 1000.0
                response.raise_for_status()
                return elapsed, response.headers.get("x-lmdeck-cache", "")

            ask("exact", "the repeated question")
            ask("semantic", "How do I reset my password for the benchmark portal?")
            for n in range(requests + 20):
                word = uuid.uuid4().hex
                timings = {
                    "exact hit": ask("exact", "the repeated question"),
                    "miss": ask("exact", f"a new question {word}"),
                    "semantic hit": ask(
                        "semantic", "What's the procedure to reset my password for the benchmark portal?"
                    ),
                    "semantic miss": ask("semantic", f"Which river flows through the city of {word}?"),
                }
                for name, (ms, verdict) in timings.items():
                    expected = "hit" if name.endswith("hit") else "miss"
                    if verdict != expected:
                        raise RuntimeError(f"{name}: the gateway answered x-lmdeck-cache: {verdict}")
                    if n >= 20:  # the first rounds warm the connection and the encoder
                        series[name].append(ms)
    print(f"== through the gateway, {requests} requests per series (ms, client side) ==")
    base = percentile(series["miss"], 99)
    for name, values in series.items():
        p99 = percentile(values, 99)
        print(f"{name:<14} p50 {percentile(values, 50):8.2f}  p99 {p99:8.2f}  ({p99 / base:.2f}x the miss p99)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="entries in the index, comma-separated")
    parser.add_argument("--queries", type=int, default=1000, help="searches timed per size")
    parser.add_argument("--libraries", action="store_true", help="also time usearch and faiss-cpu")
    parser.add_argument("--requests", type=int, default=300, help="requests per series in the gateway section")
    parser.add_argument("--skip", default="", help="sections to skip: gateway, lookup, precision")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if "gateway" not in skip:
        gateway_section(args.requests)
    if "precision" not in skip:
        sims = embed_section(200)
        if sims is not None:
            precision_section(sims)
    if "lookup" not in skip:
        lookup_section([int(s) for s in args.sizes.split(",")], args.queries, args.libraries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
