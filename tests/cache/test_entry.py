from __future__ import annotations

import pytest

from lmdeck.cache.entry import CacheEntry


def entry(**fields: object) -> CacheEntry:
    base: dict[str, object] = {
        "key": "k" * 64,
        "scope": "team:t1",
        "kind": "chat",
        "route": "gpt",
        "bundle_hash": "b1",
        "response": {"id": "c1", "object": "chat.completion", "choices": []},
        "chunks": [{"id": "c1", "object": "chat.completion.chunk", "choices": []}],
        "source_trace_id": "t" * 32,
        "created_at": 1000.0,
        "expires_at": 1060.0,
        "input_tokens": 7,
        "output_tokens": 5,
        "cost_micros": 42,
    }
    return CacheEntry(**{**base, **fields})  # type: ignore[arg-type]


def test_an_entry_survives_its_json_form() -> None:
    original = entry(extra={"text": "hi"})
    assert CacheEntry.from_json(original.to_json()) == original


def test_freshness_age_and_savings() -> None:
    e = entry()
    assert e.fresh(at=1059.9) and not e.fresh(at=1060.0)
    assert e.age_s(at=1042.7) == 42
    assert e.age_s(at=999.0) == 0
    assert e.saved_tokens == 12


def test_anything_else_is_refused() -> None:
    with pytest.raises(ValueError):
        CacheEntry.from_json(b"[1]")
    with pytest.raises(TypeError):
        CacheEntry.from_json(b'{"key": "k"}')
