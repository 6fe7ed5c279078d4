"""Unit tests of dask_prep.coref.entities: repeated entities, candidates, their keys and the per-entity cap."""

from __future__ import annotations

import random
from collections import Counter

from support.data import Tok

from dask_prep.config import EntityConfig
from dask_prep.coref.entities import (
    build_candidates,
    candidate_key,
    cap_thresholds,
    find_repeated_entities,
    merge_summaries,
    passes_cap,
    summarize_entities,
)


def test_find_repeated_entities_groups_nnp_by_form():
    tokens = [
        Tok("부산", "NNP", 40, 2),
        Tok("서울", "NNP", 0, 2),
        Tok("서울", "NNG", 5, 2),  # not a proper noun
        Tok("서울", "NNP", 20, 2),
        Tok("한", "NNP", 9, 1),  # too short
        Tok("한", "NNP", 30, 1),
        Tok("대구", "NNP", 12, 2),  # once only
        Tok("부산", "NNP", 50, 2),
        Tok("서울", "NNP", 60, 2),
    ]
    config = EntityConfig()
    assert find_repeated_entities(tokens, config) == {
        "부산": [(40, 42), (50, 52)],
        "서울": [(0, 2), (20, 22), (60, 62)],
    }
    config.stop_entities = ["부산"]
    config.min_mentions = 3
    assert find_repeated_entities(tokens, config) == {"서울": [(0, 2), (20, 22), (60, 62)]}
    config.min_chars = 1
    config.min_mentions = 2
    assert set(find_repeated_entities(tokens, config)) == {"서울", "한"}


def test_build_candidates_distance_bounds_and_three_masked_mentions():
    config = EntityConfig()
    entities = {
        # mentions 2-4 are at distances 9 (too close), 10 and 2000 (both bounds inclusive)
        "서울": [(100, 102), (109, 111), (110, 112), (2100, 2102), (2101, 2103)],
        "부산": [(0, 2), (2001, 2003)],  # 2001 is too far
        "대구": [(5, 7), (50, 52), (60, 62), (70, 72), (80, 82), (90, 92)],  # only mentions 2, 3, 4
    }
    candidates = build_candidates("doc-1", entities, config)
    got = [(c.target, c.antecedent_start, c.antecedent_end, c.start, c.end, c.distance) for c in candidates]
    assert got == [
        ("대구", 5, 7, 50, 52, 45),
        ("대구", 5, 7, 60, 62, 55),
        ("대구", 5, 7, 70, 72, 65),
        ("서울", 100, 102, 110, 112, 10),
        ("서울", 100, 102, 2100, 2102, 2000),
    ]
    assert all(c.key == candidate_key("doc-1", c.target, c.start) for c in candidates)
    config.max_masked_mentions = 1
    assert [c.start for c in build_candidates("doc-1", entities, config)] == [50]  # 서울's 2nd is too close


def test_candidate_key_is_a_stable_hash():
    # A fixed value: the cap must pick the same examples in every process and release.
    assert candidate_key("doc-1", "서울", 120) == 1209451613911786649
    assert candidate_key("doc-1", "서울", 121) != candidate_key("doc-1", "서울", 120)
    assert candidate_key("doc-2", "서울", 120) != candidate_key("doc-1", "서울", 120)
    assert 0 <= candidate_key("doc-1", "서울", 120) < 2**63


def _cap_items() -> list[tuple[str, int]]:
    sizes = {"서울": 50, "부산": 7, "대구": 5, "광주": 2}
    return [(target, candidate_key(f"doc-{i}", target, 10 * i + 3)) for target, n in sizes.items() for i in range(n)]


def _summaries_in_pieces(items, cap, rng: random.Random):
    items = items[:]
    rng.shuffle(items)
    cuts = sorted(rng.randint(0, len(items)) for _ in range(rng.randint(0, 9)))
    pieces = [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)], strict=True)]
    summaries = [summarize_entities(p, cap) for p in pieces]
    rng.shuffle(summaries)
    # A tree of merges, as Dask's reduction does, in a random shape.
    while len(summaries) > 1:
        k = rng.randint(2, 3)
        summaries = [merge_summaries(summaries[i : i + k], cap) for i in range(0, len(summaries), k)]
    return summaries[0]


def test_cap_is_independent_of_order_and_partitioning():
    cap = 5
    items = _cap_items()
    reference = cap_thresholds(merge_summaries([summarize_entities(items, cap)], cap), cap)
    keys = {t: sorted(k for tt, k in items if tt == t) for t in ("서울", "부산", "대구", "광주")}
    # Over the cap: 서울 (50) and 부산 (7); 대구 has exactly the cap, 광주 fewer.
    assert reference == {"서울": keys["서울"][cap - 1], "부산": keys["부산"][cap - 1]}
    rng = random.Random(20240611)
    for _ in range(50):
        summary = _summaries_in_pieces(items, cap, rng)
        assert {t: count for t, (count, _) in summary.items()} == {"서울": 50, "부산": 7, "대구": 5, "광주": 2}
        assert cap_thresholds(summary, cap) == reference

    kept = [(t, k) for t, k in items if passes_cap(t, k, reference)]
    by_target = Counter(t for t, _ in kept)
    assert by_target == {"서울": 5, "부산": 5, "대구": 5, "광주": 2}
    assert sorted(k for t, k in kept if t == "서울") == keys["서울"][:cap]  # exactly the lowest keys


def test_no_cap_keeps_everything_and_stores_no_keys():
    items = _cap_items()
    summary = merge_summaries([summarize_entities(items[:20], None), summarize_entities(items[20:], None)], None)
    assert summary["서울"] == (50, [])
    assert cap_thresholds(summary, None) == {}
    assert all(passes_cap(t, k, {}) for t, k in items)
