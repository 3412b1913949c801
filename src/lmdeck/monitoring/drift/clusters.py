"""The prompts the current window has more of: k-means clusters of the pooled prompt embeddings.

    clusters = new_clusters(ref_vectors, cur_vectors, cur_ids, cur_texts, top=3, seed=0)
    clusters[0].share_current, clusters[0].share_reference, clusters[0].examples

Both windows' prompts are clustered together (scikit-learn's ``KMeans``, k = one cluster per 25
prompts, between 2 and 12); a cluster is ranked by how much more of the current window than of the
reference window falls in it (``share_current - share_reference``), and only clusters the current
window has more of are returned. ``novel`` marks a cluster no reference prompt falls in. Examples are
the current window's prompts nearest the cluster's centre, cut to 200 characters, or ids only when
``show_text`` is False (the redaction setting withholds bodies).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from lmdeck.monitoring.drift.registry import Matrix
from lmdeck.protocol.drift import ClusterExample, DriftCluster

PROMPTS_PER_CLUSTER = 25
MAX_CLUSTERS = 12
EXAMPLES = 3
EXAMPLE_CHARS = 200


def new_clusters(
    reference: Matrix,
    current: Matrix,
    current_prompts: list[tuple[str, str]],
    *,
    top: int = 3,
    seed: int = 0,
    show_text: bool = True,
) -> list[DriftCluster]:
    """Up to ``top`` clusters the current window has a larger share of, largest gain first."""
    n_ref, n_cur = len(reference), len(current)
    if n_ref == 0 or n_cur == 0 or top <= 0:
        return []
    pooled = np.vstack([reference, current])
    k = int(min(MAX_CLUSTERS, max(2, len(pooled) // PROMPTS_PER_CLUSTER), len(pooled)))
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pooled)
    labels = model.labels_
    ref_labels, cur_labels = labels[:n_ref], labels[n_ref:]
    found = []
    for cluster in range(k):
        in_ref = int((ref_labels == cluster).sum())
        members = np.flatnonzero(cur_labels == cluster)
        share_ref, share_cur = in_ref / n_ref, len(members) / n_cur
        if share_cur <= share_ref:
            continue
        distances = np.linalg.norm(current[members] - model.cluster_centers_[cluster], axis=1)
        nearest = members[np.argsort(distances, kind="stable")[:EXAMPLES]]
        examples = [
            ClusterExample(
                trace_id=current_prompts[i][0],
                text=current_prompts[i][1][:EXAMPLE_CHARS] if show_text else None,
            )
            for i in nearest
        ]
        found.append(
            DriftCluster(
                current=len(members),
                reference=in_ref,
                share_current=share_cur,
                share_reference=share_ref,
                novel=in_ref == 0,
                examples=examples,
            )
        )
    found.sort(key=lambda c: c.share_current - c.share_reference, reverse=True)
    return found[:top]
