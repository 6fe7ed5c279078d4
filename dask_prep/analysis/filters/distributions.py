"""How the values each rule measured are spread: per partition, merged, and for the report."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from dask_prep.analysis.filters.base import rule_edges
from dask_prep.analysis.filters.registry import FILTERS
from dask_prep.analysis.progressive import PREFIX
from dask_prep.config import Config
from dask_prep.document import Document


def measured_distributions(docs: Iterable[Document], config: Config) -> dict[str, dict[str, Any]]:
    """Per enabled rule, how the values it measured are spread (documents that reached it).

    Mergeable across partitions (`merge_distributions`): counts per bin, where bin 0 holds
    values below the first edge and bin i values in [edges[i-1], edges[i]); the last bin is
    unbounded above. With progressive analysis, `on_prefix` counts values measured on an
    analysed prefix (the verdict was final there) and `not_measured` the documents decided
    on a prefix for which this analysis rule has no value.
    """
    out = {}
    for name, rule in config.rules.items():
        if rule.enabled:
            edges = rule_edges(FILTERS[name], rule)
            out[name] = {
                "edges": edges,
                "counts": [0] * (len(edges) + 1),
                "min_bound": rule.min,
                "max_bound": rule.max,
                "n": 0,
                "sum": 0.0,
                "min": None,
                "max": None,
                "below_min": 0,
                "above_max": 0,
                "on_prefix": 0,
                "not_measured": 0,
            }
    for doc in docs:
        if doc.analysis == PREFIX:
            for name, dist in out.items():
                if FILTERS[name].needs_analysis:
                    dist["on_prefix" if doc.metrics.get(name) is not None else "not_measured"] += 1
        for name, value in doc.metrics.items():
            dist = out.get(name)
            if dist is None or value is None:
                continue
            dist["n"] += 1
            dist["sum"] += value
            dist["min"] = value if dist["min"] is None else min(dist["min"], value)
            dist["max"] = value if dist["max"] is None else max(dist["max"], value)
            dist["counts"][bisect.bisect_right(dist["edges"], value)] += 1
            if dist["min_bound"] is not None and value < dist["min_bound"]:
                dist["below_min"] += 1
            if dist["max_bound"] is not None and value > dist["max_bound"]:
                dist["above_max"] += 1
    return out


def merge_distributions(parts: Iterable[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Add up the per-partition distributions of `measured_distributions` (order-free)."""
    total: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, dist in part.items():
            into = total.get(name)
            if into is None:
                total[name] = {**dist, "counts": list(dist["counts"])}
                continue
            if into["edges"] != dist["edges"]:
                raise ValueError(f"rule {name}: partitions were measured with different histogram edges")
            into["counts"] = [a + b for a, b in zip(into["counts"], dist["counts"], strict=True)]
            for key in ("n", "sum", "below_min", "above_max"):
                into[key] += dist[key]
            for key in ("on_prefix", "not_measured"):  # absent from stats of older runs (--resume)
                into[key] = into.get(key, 0) + dist.get(key, 0)
            for key, pick in (("min", min), ("max", max)):
                values = [v for v in (into[key], dist[key]) if v is not None]
                into[key] = pick(values) if values else None
    return total


def describe_distribution(dist: dict[str, Any]) -> dict[str, Any]:
    """The report's readable form: bounds, how many fall outside them, and the non-empty bins."""
    edges = dist["edges"]
    bins = []
    for i, count in enumerate(dist["counts"]):
        if count:
            low = edges[i - 1] if i > 0 else None
            high = edges[i] if i < len(edges) else None
            bins.append({"from": low, "to": high, "count": count})
    return {
        "measured": dist["n"],
        "threshold_min": dist["min_bound"],
        "threshold_max": dist["max_bound"],
        "below_min": dist["below_min"],
        "above_max": dist["above_max"],
        "min": dist["min"],
        "mean": round(dist["sum"] / dist["n"], 6) if dist["n"] else None,
        "max": dist["max"],
        "histogram": bins,
        "measured_on_prefix": dist.get("on_prefix", 0),
        "not_measured_stopped_early": dist.get("not_measured", 0),
    }
