"""Near-duplicates by MinHash LSH (issue 31): signatures, buckets and clusters, without a cluster.

The constructed corpus (real documents, known near-copies) is in tests/integration/test_near_dedup_corpus.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dask_prep.dedup.minhash import (
    estimated_jaccard,
    jaccard,
    node_id,
    signature,
)
from dask_prep.dedup.near import bucket_edges, component_labels, near_rejects

NGRAM, BANDS, ROWS, THRESHOLD = 5, 20, 5, 0.7


def test_signature_is_a_pure_function_of_the_normalised_text() -> None:
    text = "서울특별시는 대한민국의 수도이다.\n서울은 한강을 끼고 있다."
    first = signature(text, NGRAM, 100)
    assert first.dtype == np.uint32 and first.shape == (100,)
    assert np.array_equal(first, signature("  " + text.replace(" ", "\t "), NGRAM, 100))
    assert not np.array_equal(first, signature(text.replace("서울은", "부산은"), NGRAM, 100))
    assert signature("", NGRAM, 4).tolist() == [0xFFFFFFFF] * 4
    assert signature("가나", NGRAM, 4).tolist() != [0xFFFFFFFF] * 4  # shorter than n: one shingle


def test_estimated_jaccard_follows_the_exact_one() -> None:
    words = [f"단어{i}" for i in range(400)]
    for keep in (1.0, 0.9, 0.7, 0.5):
        other = words[: int(len(words) * keep)] + [f"다른{i}" for i in range(int(len(words) * (1 - keep)))]
        exact = jaccard(" ".join(words), " ".join(other), NGRAM)
        estimate = estimated_jaccard(signature(" ".join(words), NGRAM, 256), signature(" ".join(other), NGRAM, 256))
        assert abs(exact - estimate) < 0.1, (keep, exact, estimate)


def test_short_texts_keep_independent_samples() -> None:
    """9-character texts sharing 3 of their 5 shingles (Jaccard 3/7): most bins are empty in both,
    and their estimate must stay near 0.43 (bins borrowed from filled ones put pairs like these at 0.7+)."""
    rng = np.random.default_rng(3)
    for codes in rng.integers(0, 11172, size=(40, 11)):
        syllables = [chr(0xAC00 + int(code)) for code in codes]
        head, tail = "".join(syllables[:7]), syllables[7:]
        first, second = head + tail[0] + tail[1], head + tail[2] + tail[3]
        assert abs(jaccard(first, second, NGRAM) - 3 / 7) < 1e-9
        assert estimated_jaccard(signature(first, NGRAM, 100), signature(second, NGRAM, 100)) < 0.6


def test_buckets_give_adjacent_edges_only() -> None:
    rows = pd.DataFrame({"band_key": [7, 7, 7, 7, 3, 3, 9], "node": [40, 10, 30, 20, 10, 20, 50]})
    edges = bucket_edges(rows.sample(frac=1, random_state=1))
    assert sorted(map(tuple, edges.to_numpy().tolist())) == [(10, 20), (20, 30), (30, 40)]


def test_components_join_chains_and_stars() -> None:
    labels = component_labels(7, np.array([5, 1, 3, 2]), np.array([6, 2, 1, 4]))
    assert labels.tolist() == [0, 1, 1, 1, 1, 5, 5]


def test_the_smallest_copy_key_of_a_cluster_is_kept_whatever_the_edges_order() -> None:
    nodes = pd.DataFrame(
        {
            "node": [node_id(0, 0), node_id(0, 1), node_id(1, 0), node_id(1, 1)],
            "partition": [0, 0, 1, 1],
            "key_id": ["c", "b", "a", "z"],
            "key_source": ["x"] * 4,
            "key_line": [1, 2, 1, 2],
        }
    )
    edges = pd.DataFrame({"a": [node_id(0, 0), node_id(0, 1)], "b": [node_id(0, 1), node_id(1, 0)]})
    for order in (edges, edges.iloc[::-1]):
        rejects = near_rejects(order, nodes)
        assert sorted(zip(rejects["key_id"], rejects["duplicate_of"], strict=True)) == [("b", "a"), ("c", "a")]
        assert set(rejects["rejected_by"]) == {"near_duplicate"}
