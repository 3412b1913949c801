"""``lmdeck releases status`` as text: state, share, the last analysis per metric and the history."""

from __future__ import annotations

from lmdeck.cli.releases import status_text


def test_status_text_shows_the_numbers_behind_each_decision() -> None:
    found = {
        "spec": {"name": "reply-v3", "route": "support", "strategy": {"steps": [10, 50, 100]}},
        "state": "canary",
        "step": 1,
        "percent": 50.0,
        "reason": "every metric within tolerance",
        "last_analysis": {
            "decision": "hold",
            "reason": "not yet shown within tolerance",
            "metrics": [
                {
                    "name": "error_rate",
                    "baseline": 0.01,
                    "candidate": 0.02,
                    "baseline_n": 120,
                    "candidate_n": 118,
                    "low": -0.01,
                    "high": 0.05,
                    "tolerance": 0.02,
                    "verdict": "inconclusive",
                }
            ],
        },
        "history": [
            {"at": 1.0, "action": "started", "to_state": "canary", "percent": 10.0, "actor": "key:k", "reason": None},
            {"at": 2.0, "action": "step", "to_state": "canary", "percent": 50.0, "actor": "system:release-controller"},
        ],
    }
    text = status_text(found)
    assert text.splitlines()[0] == "release reply-v3 on route support: canary step 2/3, candidate 50%"
    assert "error_rate" in text and "120/118" in text and "[-0.01, 0.05]" in text and "inconclusive" in text
    assert "system:release-controller" in text
