"""Stage 1's reduction, on the workers: the cap's entity summaries and the surfaces'
proper-noun counts of every partition, merged in any order into the cap thresholds.

The thresholds mark the targets below `entities.min_proper_share` with `NOT_PROPER`
(`dask_prep.coref.names`), so that one small dict decides both before stage 2.
"""

from __future__ import annotations

from dask_prep.coref.entities import Summary, cap_thresholds, merge_summaries
from dask_prep.coref.names import ProperCounts, merge_proper_counts, not_proper_targets, thresholds_with_not_proper
from dask_prep.stats import AnalysisStats

# What stage 1's reduction carries: the cap's summary and the surfaces' proper-noun counts.
Reduced = tuple[Summary, ProperCounts]


def _summaries(stats: list[AnalysisStats], cap: int | None) -> Reduced:
    stats = list(stats)  # Dask may pass an iterator: it is read twice here
    return merge_summaries((s.summary for s in stats), cap), merge_proper_counts(s.proper_counts or {} for s in stats)


def _merge_reduced(parts: list[Reduced], cap: int | None) -> Reduced:
    parts = list(parts)
    return merge_summaries((p[0] for p in parts), cap), merge_proper_counts(p[1] for p in parts)


def _cap_result(reduced: Reduced, cap: int | None, min_proper_share: float) -> tuple[dict, int]:
    """(cap thresholds, with the targets below `min_proper_share` marked NOT_PROPER; distinct targets)."""
    summary, counts = reduced
    not_proper = not_proper_targets(summary, counts, min_proper_share)
    kept = {target: entry for target, entry in summary.items() if target not in not_proper}
    return thresholds_with_not_proper(cap_thresholds(kept, cap), not_proper), len(summary)
