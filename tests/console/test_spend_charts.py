"""The spend page's chart columns: cost per step and group (the dearest groups, the rest as "other"),
and a budget's cumulative burn-down across its whole period."""

from __future__ import annotations

from lmdeck.console.spend_charts import MAX_GROUPS, burndown, spend_by_group


def row(bucket: int, micros: int, **group: object) -> dict[str, object]:
    return {"bucket": bucket, "group": group, "cost_micros": micros}


def test_groups_are_lines_dearest_first_with_gaps_as_zero() -> None:
    rows = [row(0, 1_000_000, team_id="a"), row(7200, 500_000, team_id="a"), row(3600, 3_000_000, team_id="b")]
    chart = spend_by_group(rows, "team_id", since=100, step=3600, now=7300, labels={"b": "team b"})
    assert chart["x"] == [0, 3600, 7200]
    assert chart["series"] == [{"label": "team b", "key": "s0"}, {"label": "a", "key": "s1"}]
    assert chart["s0"] == [0.0, 3.0, 0.0] and chart["s1"] == [1.0, 0.0, 0.5]


def test_groups_past_the_limit_are_summed_as_other() -> None:
    rows = [row(0, (i + 1) * 1000, model=f"m{i}") for i in range(MAX_GROUPS + 2)] + [row(0, 7, model=None)]
    chart = spend_by_group(rows, "model", since=0, step=60, now=30)
    labels = [s["label"] for s in chart["series"]]
    assert len(labels) == MAX_GROUPS + 1 and labels[-1] == "other" and labels[0] == f"m{MAX_GROUPS + 1}"
    assert chart["other"] == [(1000 + 2000 + 7) / 1_000_000]


def test_a_burn_down_accumulates_the_subject_only_and_stops_at_now() -> None:
    rows = [row(0, 1_000_000, key_id="k"), row(3600, 2_000_000, key_id="k"), row(0, 9_000_000, key_id="other")]
    burn = burndown(rows, "k", "key_id", window=(0, 4 * 3600), step=3600, now=3700, limit_micros=5_000_000)
    assert burn["x"] == [0, 3600, 7200, 10800, 14400]
    assert burn["spent_usd"] == [0.0, 1.0, 3.0, None, None]
    assert burn["limit_usd"] == [5.0] * 5
