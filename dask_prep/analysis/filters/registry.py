"""Every rule a config may name, by its name: the seed-v2 rules and the FineWeb-2 rules.

A config's `rules` are keyed by these names (dask_prep/config.py's presets); a chain
configures the registered rule with the config's thresholds (`QualityFilter.configured`).
"""

from __future__ import annotations

from collections.abc import Iterable

from dask_prep.analysis.filters.base import QualityFilter
from dask_prep.analysis.filters.fineweb2 import FINEWEB2_RULES
from dask_prep.analysis.filters.seed_v2 import SEED_V2_RULES


def _by_name(*groups: Iterable[QualityFilter]) -> dict[str, QualityFilter]:
    registry: dict[str, QualityFilter] = {}
    for rule in (rule for group in groups for rule in group):
        if rule.name in registry:
            raise ValueError(f"two rules are named {rule.name!r}")
        registry[rule.name] = rule
    return registry


FINEWEB2_FILTERS: dict[str, QualityFilter] = _by_name(FINEWEB2_RULES)
FILTERS: dict[str, QualityFilter] = _by_name(SEED_V2_RULES, FINEWEB2_RULES)
