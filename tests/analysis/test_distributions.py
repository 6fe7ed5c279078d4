"""Unit tests of the measured-value distributions in the report: histogram edges and merging."""

from __future__ import annotations

import random

import pytest

from dask_prep.analysis.filters import describe_distribution, measured_distributions, merge_distributions
from dask_prep.config import preset
from dask_prep.document import Document


def _measured(values: dict[str, list[float | None]]) -> list[Document]:
    """Documents whose `metrics` hold the given values (None: the rule was not reached)."""
    n = max(len(v) for v in values.values())
    docs = [Document(doc_id=f"d{i}", text="x", source="s", line=i + 1) for i in range(n)]
    for name, column in values.items():
        for doc, value in zip(docs, column, strict=False):
            if value is not None:
                doc.metrics[name] = value
    return docs


def test_histogram_has_an_edge_at_each_threshold_and_counts_both_sides():
    config = preset("seed-v2")  # length in [800, 2500]
    docs = _measured({"length": [10, 799, 800, 801, 2500, 2501, 99_999], "nnp_ratio": [0.049, 0.05, None]})
    out = {k: describe_distribution(v) for k, v in measured_distributions(docs, config).items()}
    length = out["length"]
    assert length["measured"] == 7 and length["below_min"] == 2 and length["above_max"] == 2
    bins = {(b["from"], b["to"]): b["count"] for b in length["histogram"]}
    assert bins[(500, 800)] == 1  # 799, just under the minimum
    assert bins[(800, 1000)] == 2  # 800 and 801: the minimum itself is kept
    assert (2000, 2500) not in bins  # empty bins are left out
    assert bins[(2500, 5000)] == 2  # 2500 (kept, on the edge) and 2501 (rejected)
    assert bins[(50_000, 100_000)] == 1 and bins[(10, 20)] == 1
    assert sum(b["count"] for b in length["histogram"]) == 7
    assert (length["min"], length["max"]) == (10, 99_999)
    assert length["mean"] == pytest.approx(sum([10, 799, 800, 801, 2500, 2501, 99_999]) / 7)
    nnp = out["nnp_ratio"]
    assert nnp["measured"] == 2 and nnp["below_min"] == 1 and nnp["above_max"] == 0
    assert [(b["from"], b["to"], b["count"]) for b in nnp["histogram"]] == [(0.0, 0.05, 1), (0.05, 0.1, 1)]
    assert out["pronoun"]["measured"] == 0 and out["pronoun"]["histogram"] == []
    assert set(out) == {name for name, rule in config.rules.items() if rule.enabled}


def test_distributions_merge_the_same_for_any_partitioning():
    rng = random.Random(7)
    config = preset("fineweb2-ko")
    names = [name for name, rule in config.rules.items() if rule.enabled]
    docs = _measured(
        {name: [rng.choice([None, rng.random(), rng.random() * 50]) for _ in range(300)] for name in names}
    )
    whole = measured_distributions(docs, config)

    def merged(cuts: list[int]) -> dict:
        bounds = [0, *cuts, len(docs)]
        parts = [measured_distributions(docs[a:b], config) for a, b in zip(bounds, bounds[1:], strict=False)]
        rng.shuffle(parts)
        return {k: describe_distribution(v) for k, v in merge_distributions(parts).items()}

    expected = {k: describe_distribution(v) for k, v in whole.items()}
    assert merged([150]) == expected
    assert merged([1, 2, 90, 299]) == expected
    for name in names:
        assert sum(b["count"] for b in expected[name]["histogram"]) == sum(name in d.metrics for d in docs)
