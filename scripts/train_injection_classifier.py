"""Train the ``prompt_injection`` guardrail's classifier on the labelled set that ships in tests/data.

The set (``tests/data/guardrails/injection.jsonl``, one JSON object a line: ``text``,
``label`` injection|benign, ``category``, ``split`` train|heldout) holds instruction
overrides, role-play jailbreaks, system-prompt extraction, fake role markers, indirect
injection in documents and tool output, encoded and obfuscated attempts and attempts in
other languages, against everyday prompts, harmless role-play and hard benign prompts that
say "ignore", "instructions" or "system prompt" innocently. Rows whose ``split`` is
``heldout`` (a quarter, chosen by the SHA-256 of the text) are never trained on, nor used to
choose the regularisation or the threshold: they only measure the result.

Each text is read as the guardrail reads it (:func:`lmdeck.guardrails.builtin.injection_cues.variants`),
every reading embedded with the bundled all-MiniLM-L6-v2 and joined to its heuristic cues; a
scikit-learn logistic regression (balanced classes, ``C`` chosen by 5-fold cross-validation on
the training rows, folds grouped by text) learns from the readings, and a text's probability is
its highest reading's, as in the gateway. The default threshold is chosen by a rule fixed in
advance on the same out-of-fold probabilities of the written training rows: the threshold of
:data:`THRESHOLD_GRID` with the highest F1, the higher one on a tie; it is written into the
weights, and the guardrail uses it unless a route sets ``threshold``. Long documents composed of training rows, half of
them with a training attempt planted inside, teach it that length alone is no sign (a
reading of such a document counts as an attempt only if it holds the planted text). The weights, with the scaling folded in, go to
``src/lmdeck/guardrails/builtin/data/injection.json`` with that threshold and the held-out
precision and recall at it::

    python scripts/train_injection_classifier.py                 # writes the shipped weights
    python scripts/train_injection_classifier.py --out /tmp/w.json --threshold 0.7   # fixed instead
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from lmdeck.guardrails.builtin.injection import WEIGHTS_FORMAT, feature_rows, weights_path
from lmdeck.guardrails.builtin.injection_cues import CUE_NAMES, variants
from lmdeck.local.embeddings import SentenceEmbedder, minilm_dir

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "tests" / "data" / "guardrails" / "injection.jsonl"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: The thresholds the default is chosen from: 0.05, 0.06, … 0.95.
THRESHOLD_GRID = tuple(round(0.05 + 0.01 * step, 2) for step in range(91))
#: How the default threshold is chosen, as recorded in the weights.
THRESHOLD_RULE = (
    "highest F1 of 5-fold cross-validation on the training rows, thresholds 0.05..0.95 by 0.01, higher on a tie"
)
#: How a long document is handed over, for the composed training documents.
DOCUMENT_ASKS = (
    "Summarise this document:",
    "Translate the following into German:",
    "Here is the text:",
    "Review this:",
    "",
)
#: The categories whose training rows read like the content of a document, and the attempts planted in one.
DOCUMENT_PARTS = ("documents", "tasks", "general")
PLANTED = ("override", "indirect", "extraction", "delimiter", "bypass")


def long_documents(train: list[dict[str, Any]], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` long benign documents composed of training rows, and ``count`` with a training attempt planted inside.

    The labelled set is mostly single prompts; without long texts the classifier learns that
    length and unusual text are suspicious. Only training rows are used, so the held-out
    split stays unseen.
    """
    rng = random.Random(seed)
    parts = [row["text"] for row in train if row["label"] == "benign" and row["category"] in DOCUMENT_PARTS]
    attempts = [row["text"] for row in train if row["label"] == "injection" and row["category"] in PLANTED]
    composed = []
    for index in range(2 * count):
        body = rng.sample(parts, rng.randint(4, 12))
        planted = index % 2 == 1
        attempt = rng.choice(attempts) if planted else ""
        if planted:
            body.insert(rng.randint(0, len(body)), attempt)
        text = " ".join([rng.choice(DOCUMENT_ASKS), *body]).strip()
        label = "injection" if planted else "benign"
        composed.append({"text": text, "label": label, "category": "composed", "split": "train", "planted": attempt})
    return composed


def sees(reading: str, planted: str, words: int = 180) -> bool:
    """Whether the encoder's view of ``reading`` (about its first ``words`` words) holds a piece of ``planted``."""
    seen = " ".join(reading.split()[:words])
    tokens = planted.split()
    shingles = {" ".join(tokens[i : i + 5]) for i in range(max(1, len(tokens) - 4))}
    return any(shingle in seen for shingle in shingles)


def load_examples(path: Path) -> list[dict[str, Any]]:
    """The labelled rows of ``path``; ValueError names a malformed line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in ("injection", "benign") or row.get("split") not in ("train", "heldout"):
            raise ValueError(f"{path}:{number}: label must be injection|benign and split train|heldout")
        rows.append(row)
    return rows


def featurize(texts: list[str], embedder: SentenceEmbedder) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Feature rows of every reading of every text, the index of the text each row belongs to, and the readings."""
    readings = [variants(text) for text in texts]
    flat = [reading.text for group in readings for reading in group]
    vectors: list[list[float]] = []
    for start in range(0, len(flat), 64):
        batch, _ = embedder.encode(flat[start : start + 64])
        vectors.extend(batch.tolist())
    rows, owners, at = [], [], 0
    for index, group in enumerate(readings):
        rows.append(feature_rows(group, vectors[at : at + len(group)]))
        owners.extend([index] * len(group))
        at += len(group)
    return np.vstack(rows), np.asarray(owners), [[reading.text for reading in group] for group in readings]


def reading_labels(rows: list[dict[str, Any]], owners: np.ndarray, readings: list[list[str]]) -> np.ndarray:
    """1 for a reading of an attempt: every reading of a written attempt, and of a composed document only those that see the planted attempt."""
    labels = []
    for index, group in enumerate(readings):
        row = rows[index]
        for text in group:
            if row.get("planted"):
                labels.append(int(sees(text, row["planted"])))
            else:
                labels.append(int(row["label"] == "injection"))
    assert len(labels) == len(owners)
    return np.asarray(labels)


def text_probabilities(probabilities: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Each text's probability: the highest of its readings'."""
    best = np.zeros(n)
    np.maximum.at(best, owners, probabilities)
    return best


def quality(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of "injection" at ``threshold``, with the counts they come from."""
    predicted = probabilities >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    model.fit(scaler.transform(x), y)
    return scaler, model


def best_threshold(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, dict[str, float]]:
    """The threshold of :data:`THRESHOLD_GRID` with the highest F1 (the higher on a tie) and its scores."""
    best = (THRESHOLD_GRID[0], quality(labels, probabilities, THRESHOLD_GRID[0]))
    for threshold in THRESHOLD_GRID[1:]:
        scores = quality(labels, probabilities, threshold)
        if scores["f1"] >= best[1]["f1"]:
            best = (threshold, scores)
    return best


def choose_c(
    x: np.ndarray, y: np.ndarray, owners: np.ndarray, labels: np.ndarray, written: int, threshold: float | None
) -> tuple[float, float, dict[str, float]]:
    """The ``C`` of the grid, and the threshold, with the best cross-validated text-level F1 on the written training rows.

    Every row (composed documents too) is trained on, but the choice is scored on the
    ``written`` rows only: those are drawn like the held-out split. With ``threshold`` None
    each ``C`` is scored at its own best threshold (:func:`best_threshold`); otherwise at
    ``threshold``. Returns ``(C, threshold, cross-validated scores at it)``.
    """
    folds = GroupKFold(n_splits=5)
    best: tuple[float, float, dict[str, float]] | None = None
    for c in C_GRID:
        probabilities = np.zeros(len(y))
        for train_index, test_index in folds.split(x, y, groups=owners):
            scaler, model = fit(x[train_index], y[train_index], c)
            probabilities[test_index] = model.predict_proba(scaler.transform(x[test_index]))[:, 1]
        texts = text_probabilities(probabilities, owners, len(labels))[:written]
        if threshold is None:
            at, scores = best_threshold(labels[:written], texts)
        else:
            at, scores = threshold, quality(labels[:written], texts, threshold)
        print(f"  C={c:<5g} cross-validated at threshold {at:.2f}: {scores}")
        if best is None or scores["f1"] > best[2]["f1"]:
            best = (c, at, scores)
    assert best is not None
    return best


def per_category(rows: list[dict[str, Any]], probabilities: np.ndarray, threshold: float) -> dict[str, dict[str, Any]]:
    """Per category: rows, and how many were called injections."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row, probability in zip(rows, probabilities, strict=True):
        key = f"{row['label']}/{row['category']}"
        counts[key]["n"] += 1
        counts[key]["flagged"] += int(probability >= threshold)
    return {key: dict(value) for key, value in sorted(counts.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=weights_path())
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a fixed default threshold instead of the one chosen by cross-validation on the training rows",
    )
    parser.add_argument(
        "--documents", type=int, default=150, help="long documents composed from training rows, of each label"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    examples = load_examples(args.data)
    written = [row for row in examples if row["split"] == "train"]
    train = written + long_documents(written, args.documents)
    heldout = [row for row in examples if row["split"] == "heldout"]
    embedder = SentenceEmbedder.load(minilm_dir(), torch.device("cpu"))

    x, owners, readings = featurize([row["text"] for row in train], embedder)
    train_labels = np.asarray([row["label"] == "injection" for row in train])
    y = reading_labels(train, owners, readings)
    print(
        f"{len(written)} training texts and {len(train) - len(written)} composed documents ({int(train_labels.sum())} injection) as {len(y)} readings"
    )
    c, threshold, cross_validated = choose_c(x, y, owners, train_labels, len(written), args.threshold)
    print(f"chose C={c} and threshold {threshold}")
    scaler, model = fit(x, y, c)
    scale = scaler.scale_
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * scaler.mean_ / scale))

    hx, h_owners, _ = featurize([row["text"] for row in heldout], embedder)
    h_labels = np.asarray([row["label"] == "injection" for row in heldout])
    h_probabilities = text_probabilities(1.0 / (1.0 + np.exp(-(hx @ coef + intercept))), h_owners, len(heldout))
    scores = quality(h_labels, h_probabilities, threshold)
    print(f"held-out ({len(heldout)} texts) at threshold {threshold}: {scores}")
    for key, value in per_category(heldout, h_probabilities, threshold).items():
        print(f"  {key:28s} {value['flagged']:3d}/{value['n']:3d} called injection")

    weights = {
        "format": WEIGHTS_FORMAT,
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2-normalised)",
        "cues": list(CUE_NAMES),
        "coef": [float(f"{value:.6g}") for value in coef],
        "intercept": float(f"{intercept:.6g}"),
        "C": c,
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE if args.threshold is None else "fixed by --threshold",
        "cross_validated": {"texts": len(written), **cross_validated},
        "trained_on": {
            "texts": len(written),
            "composed_documents": len(train) - len(written),
            "injection": int(train_labels.sum()),
            "readings": len(y),
        },
        "heldout": {"texts": len(heldout), "threshold": threshold, **scores},
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
