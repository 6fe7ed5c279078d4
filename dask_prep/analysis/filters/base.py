"""The rule base class and the histogram edges of the values rules measure.

As in datatrove, `filter(doc)` returns True to keep or `(False, reason)` to drop, and the
measured value is left in `doc.metrics` under the rule's name for the report and the
per-document decisions. A rule is defined once, with what makes it this rule (its name,
n for an n-gram rule); `configured(rule, config)` gives the copy that a chain runs, with a
config's thresholds.
"""

from __future__ import annotations

import copy
import re
from typing import ClassVar, TypeVar

from dask_prep.config import Config, Rule
from dask_prep.document import Document

# Histogram bin edges of the measured values in the report. A rule's own thresholds are
# added as edges, so the histogram shows exactly where they cut.
FRACTION_EDGES: tuple[float, ...] = tuple(round(i * 0.05, 2) for i in range(21))
# fmt: off
COUNT_EDGES: tuple[float, ...] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000,
                                  10_000, 20_000, 50_000, 100_000, 1_000_000)
# fmt: on

_Rule = TypeVar("_Rule", bound="QualityFilter")


class QualityFilter:
    """One rule: keeps a document whose measured value lies in [min, max] (None = unbounded).

    `name` is the rule's registry key, config key and report key. A rule drops with its
    name as the reason unless it is given a reason of its own for each side (`below_min`,
    `above_max`), as datatrove's two-sided checks have.
    """

    needs_analysis: ClassVar[bool] = False
    edges: ClassVar[tuple[float, ...]] = FRACTION_EDGES  # most rules measure a fraction
    # True for an analysis rule whose value over a text is the sum of its values over
    # consecutive pieces of it (a count of tokens): more text can only raise it, so once a
    # prefix's value is above `max` the verdict is final (progressive analysis).
    additive: ClassVar[bool] = False
    # Where in a text the rule is likely to decide (progressive analysis ends a chunk just
    # after the next match); None = anywhere. It only steers the chunking, never a verdict.
    hint: ClassVar[re.Pattern | None] = None

    def __init__(self, name: str, *, below_min: str | None = None, above_max: str | None = None) -> None:
        self.name = name
        self.below_min = below_min or name
        self.above_max = above_max or name
        self.min: float | None = None
        self.max: float | None = None

    def configured(self: _Rule, rule: Rule, config: Config) -> _Rule:
        """A copy of this rule with the thresholds of `rule` (the config's entry for it)."""
        configured = copy.copy(self)
        configured.min = rule.min
        configured.max = rule.max
        return configured

    @property
    def decides_early(self) -> bool:
        """Whether a prefix's analysis can reject: an additive value with an upper bound."""
        return self.needs_analysis and self.additive and self.max is not None

    def measure(self, doc: Document) -> float:
        raise NotImplementedError

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        value = self.measure(doc)
        doc.metrics[self.name] = value
        if self.min is not None and value < self.min:
            return False, self.below_min
        if self.max is not None and value > self.max:
            return False, self.above_max
        return True


def rule_edges(rule_filter: QualityFilter, rule: Rule) -> list[float]:
    """The histogram edges of one rule: its class's edges plus the config's thresholds."""
    edges = set(rule_filter.edges)
    edges.update(x for x in (rule.min, rule.max) if x is not None)
    return sorted(edges)
