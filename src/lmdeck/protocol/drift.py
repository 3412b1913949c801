"""Wire schemas of drift reports (``GET /api/drift/report``, ``lmdeck drift report``).

A report compares one route's traffic in a reference window with the window after it: each test's
statistic and p-value, the verdict, and the clusters of prompts the current window has more of.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Signal = Literal["input", "output"]
Verdict = Literal["drift", "no_drift", "insufficient_data"]


class DriftTestResult(BaseModel):
    """One test of one signal.

    ``p_value`` is the test's own; ``adjusted_p_value`` is Holm-adjusted over the report's tests, and
    ``drift`` is ``adjusted_p_value < alpha``. A test without enough data has ``skipped`` set (why) and
    no statistic. ``detail`` holds readable numbers (means, rates, shares) of each window.
    """

    name: str
    signal: Signal
    method: str
    statistic_name: str
    statistic: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    drift: bool = False
    n_reference: int = 0
    n_current: int = 0
    detail: dict[str, float | int | str | None] = Field(default_factory=dict)
    skipped: str | None = None


class ClusterExample(BaseModel):
    """A prompt of a cluster; ``text`` is None when the redaction setting withholds bodies."""

    trace_id: str
    text: str | None = None


class DriftCluster(BaseModel):
    """A cluster of prompts (k-means in embedding space) and how much of each window falls in it."""

    current: int
    reference: int
    share_current: float
    share_reference: float
    novel: bool = Field(description="no reference prompt falls in it")
    examples: list[ClusterExample] = Field(default_factory=list)


class WindowSummary(BaseModel):
    """One window: its bounds (epoch seconds, ``until`` excluded), traces in it, and what was sampled."""

    since: float
    until: float
    total: int
    sampled: int
    prompts: int
    answers: int
    prompt_versions: dict[str, int] = Field(default_factory=dict)


class DriftReport(BaseModel):
    """A drift report; ``p_value`` is the smallest Holm-adjusted p-value of the tests that ran."""

    object: Literal["drift.report"] = "drift.report"
    route: str
    prompt: str | None = None
    prompt_version: int | None = None
    reference: WindowSummary
    current: WindowSummary
    alpha: float
    verdict: Verdict
    p_value: float | None = None
    tests: list[DriftTestResult] = Field(default_factory=list)
    clusters: list[DriftCluster] = Field(default_factory=list)
    max_samples: int
    embedding_model: str | None = None
    redacted: bool = False
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
