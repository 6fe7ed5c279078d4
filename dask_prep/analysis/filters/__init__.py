"""Quality filters: each rule measures one value of a document and keeps it or drops it.

- `base`: the rule base class (`QualityFilter`) and the histogram edges;
- `seed_v2`: the seed-v2 rules; `fineweb2` (with `words`): the FineWeb-2 rules;
- `registry`: every rule by name (`FILTERS`), the names a config's `rules` use;
- `chain`: `FilterChain`, a config's enabled rules over documents, and `kiwi_analyser`;
- `distributions`: how the measured values are spread, for the report.
"""

from dask_prep.analysis.filters.base import COUNT_EDGES, FRACTION_EDGES, QualityFilter, rule_edges
from dask_prep.analysis.filters.chain import FilterChain, analysis_mode, kiwi_analyser
from dask_prep.analysis.filters.distributions import describe_distribution, measured_distributions, merge_distributions
from dask_prep.analysis.filters.registry import FILTERS, FINEWEB2_FILTERS
from dask_prep.analysis.filters.seed_v2 import (
    PRONOUN_HINT,
    HangulRatioFilter,
    LengthFilter,
    NNPRatioFilter,
    PronounFilter,
    RepeatedEntityFilter,
    SentenceMarksFilter,
    SymbolRatioFilter,
)

__all__ = [
    "COUNT_EDGES",
    "FILTERS",
    "FINEWEB2_FILTERS",
    "FRACTION_EDGES",
    "PRONOUN_HINT",
    "FilterChain",
    "HangulRatioFilter",
    "LengthFilter",
    "NNPRatioFilter",
    "PronounFilter",
    "QualityFilter",
    "RepeatedEntityFilter",
    "SentenceMarksFilter",
    "SymbolRatioFilter",
    "analysis_mode",
    "describe_distribution",
    "kiwi_analyser",
    "measured_distributions",
    "merge_distributions",
    "rule_edges",
]
