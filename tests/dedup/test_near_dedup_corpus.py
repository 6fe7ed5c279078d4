"""Near-dedup's acceptance on the constructed corpus (issue 31), brute-force Jaccard of every pair.

The pipeline's near-dedup steps run here in one process (`_near_duplicates`); the same corpus
through the cluster is tests/integration/test_near_dedup_pipeline.py.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest
from support.near_corpus import constructed as build

from dask_prep.dedup.minhash import band_keys, node_id, shingle_hashes, signature
from dask_prep.dedup.near import band_rows, bucket_edges, near_rejects, verified_edges
from dask_prep.dedup.rejects import KEY_COLUMNS

NGRAM, BANDS, ROWS, THRESHOLD = 5, 20, 5, 0.7


@pytest.fixture(scope="module")
def constructed(shard0):
    return build(shard0)


def _near_duplicates(texts: list[str], order: list[int]) -> pd.DataFrame:
    """The pipeline's steps in one process, documents given in `order` across 3 partitions."""
    sigs, keys, node_rows = {}, [], []
    for position, index in enumerate(order):
        node = node_id(position % 3, position)
        sigs[node] = signature(texts[index], NGRAM, BANDS * ROWS)
        keys.append(band_keys(sigs[node], BANDS, ROWS))
        node_rows.append((node, position % 3, f"doc{index:04d}", "corpus.jsonl", index + 1))
    nodes = pd.DataFrame(node_rows, columns=["node", "partition", *KEY_COLUMNS])
    rows = band_rows(nodes["node"].to_numpy(), np.vstack(keys))
    return near_rejects(verified_edges(bucket_edges(rows), sigs, THRESHOLD), nodes)


def test_recall_precision_and_hard_negatives_on_the_constructed_corpus(constructed) -> None:
    texts, kinds = constructed
    rejects = _near_duplicates(texts, list(range(len(texts))))
    rejected = {int(k[3:]): int(d[3:]) for k, d in zip(rejects["key_id"], rejects["duplicate_of"], strict=True)}
    cluster = {i: rejected.get(i, i) for i in range(len(texts))}
    shingles = [shingle_hashes(t, NGRAM) for t in texts]

    def exact(i: int, j: int) -> float:
        common = np.intersect1d(shingles[i], shingles[j], assume_unique=True).size
        return common / (shingles[i].size + shingles[j].size - common)

    # Brute force over every pair whose lengths allow a Jaccard of 0.5 (|A ∩ B| <= min size).
    sizes = [s.size for s in shingles]
    similar = {
        (i, j): exact(i, j)
        for i, j in itertools.combinations(range(len(texts)), 2)
        if min(sizes[i], sizes[j]) >= 0.5 * max(sizes[i], sizes[j])
    }
    close = [pair for pair, value in similar.items() if value >= 0.8]
    assert len(close) >= 150 and {kinds.get(p) for p in close} >= {"boilerplate", "truncated", "sentence", "characters"}
    recall = sum(cluster[i] == cluster[j] for i, j in close) / len(close)
    assert recall >= 0.95, recall
    precision = [exact(i, kept) >= 0.7 for i, kept in rejected.items()]
    assert precision and sum(precision) / len(precision) >= 0.98
    negatives = [pair for pair, kind in kinds.items() if kind in ("template", "half") and similar.get(pair, 0) < 0.5]
    assert len(negatives) >= 90
    kept_both = sum(i not in rejected and j not in rejected for i, j in negatives) / len(negatives)
    assert kept_both >= 0.99, kept_both


def test_the_same_clusters_for_any_order_and_partitioning(constructed) -> None:
    texts, _ = constructed
    first = _near_duplicates(texts, list(range(len(texts))))
    order = list(range(len(texts)))
    random.Random(5).shuffle(order)
    second = _near_duplicates(texts, order)

    def decided(frame: pd.DataFrame) -> list:
        return sorted(zip(frame["key_id"], frame["duplicate_of"], strict=True))

    assert decided(first) == decided(second) and len(first) > 0
