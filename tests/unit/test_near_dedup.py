"""Near-duplicates by MinHash LSH (issue 31): signatures, buckets and clusters, without a cluster.

The corpus is built here from real Korean documents: near-copies of several kinds and hard
negatives, each pair's exact Jaccard computed by brute force over every pair of documents.
"""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pandas as pd
import pytest

from dask_prep.dedup.minhash import (
    band_keys,
    estimated_jaccard,
    jaccard,
    node_id,
    permutations,
    shingle_hashes,
    signature,
)
from dask_prep.dedup.near import band_rows, bucket_edges, component_labels, near_rejects, verified_edges
from dask_prep.dedup.rejects import KEY_COLUMNS

NGRAM, BANDS, ROWS, THRESHOLD = 5, 20, 5, 0.7


def test_signature_is_a_pure_function_of_the_normalised_text() -> None:
    text = "서울특별시는 대한민국의 수도이다.\n서울은 한강을 끼고 있다."
    first = signature(text, NGRAM, 100)
    assert first.dtype == np.uint32 and first.shape == (100,)
    assert np.array_equal(first, signature("  " + text.replace(" ", "\t "), NGRAM, 100))
    assert np.array_equal(first, signature(text, NGRAM, 100, permutations(100)))
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


# ---- the constructed corpus ---------------------------------------------------------


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


@pytest.fixture(scope="module")
def constructed(shard0):
    """Originals, near-copies of four kinds, hard negatives of two kinds: (texts, kinds of pairs)."""
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

    files = resolve_inputs([str(shard0)])
    docs, _ = read_partition(plan_partitions(files, [scan_file(files[0]).records], 3000)[0], "text", "id")
    pool = [d.text for d in docs if d.text and 800 <= len(d.text) <= 3000 and len(_sentences(d.text)) >= 8]
    rng = random.Random(31)
    rng.shuffle(pool)
    texts: list[str] = []
    kinds: dict[tuple[int, int], str] = {}

    def add(text: str) -> int:
        texts.append(text)
        return len(texts) - 1

    boiler = "본 기사는 무단 전재 및 재배포를 금지합니다. 구독 신청은 홈페이지에서 하실 수 있습니다."
    template = " ".join(_sentences(pool[-1])[:6])  # a shared header and footer for the negatives
    fillers = pool[-40:-1]
    for i, text in enumerate(pool[:200]):
        original = add(text)
        kind = ("boilerplate", "truncated", "sentence", "characters")[i % 4]
        if kind == "boilerplate":
            copy = "[뉴스] " + text + " " + boiler
        elif kind == "truncated":
            copy = text[: int(len(text) * 0.9)]
        elif kind == "sentence":
            parts = _sentences(text)
            parts[len(parts) // 2] = _sentences(fillers[i % len(fillers)])[0]
            copy = " ".join(parts)
        else:
            chars = list(text)
            for at in rng.sample(range(len(chars)), max(1, len(chars) // 200)):
                chars[at] = "가"
            copy = "".join(chars)
        kinds[(original, add(copy))] = kind
    for i, text in enumerate(pool[200:300]):  # hard negatives
        other = pool[300 + i]
        if i % 2:
            first, second = add(template + " " + text[:600]), add(template + " " + other[:600])
            kinds[(first, second)] = "template"
        else:
            a, b = _sentences(text), _sentences(other)
            half = len(a) // 2
            first, second = add(" ".join(a)), add(" ".join(a[:half] + b[: len(a) - half]))
            kinds[(first, second)] = "half"
    return texts, kinds


def _near_duplicates(texts: list[str], order: list[int]) -> pd.DataFrame:
    """The pipeline's steps in one process, documents given in `order` across 3 partitions."""
    coefficients = permutations(BANDS * ROWS)
    sigs, keys, node_rows = {}, [], []
    for position, index in enumerate(order):
        node = node_id(position % 3, position)
        sigs[node] = signature(texts[index], NGRAM, BANDS * ROWS, coefficients)
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
