"""The start-up line of ``lmdeck serve --workers`` says what is counted per worker."""

from __future__ import annotations

from lmdeck.cli.serve_workers import per_worker_limits_notice


def test_without_redis_limits_and_budgets_are_per_worker() -> None:
    notice = per_worker_limits_notice(4)
    assert "counted in each of the 4 workers" in notice and "rate limits" in notice.split(":")[0]


def test_with_redis_only_concurrency_caps_are_per_worker() -> None:
    notice = per_worker_limits_notice(4, shared=True)
    assert notice.startswith("rate limits and budget reservations are shared through Redis")
    assert "concurrency caps are counted in each of the 4 workers" in notice
    assert "per-minute" not in notice
