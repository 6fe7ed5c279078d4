"""Quality filters: each rule is a small class that measures one value of a document.

As in datatrove, `filter(doc)` returns True to keep or `(False, reason)` to drop; the
reason is the rule's name, and the measured value is left in `doc.metrics` for the report
and the per-document decisions. Rules that need no morphological analysis run first;
the rest share one Kiwi analysis per document (`doc.tokens`). With progressive analysis
(dask_prep/progressive.py) a rule that `decides_early` may reject a document on the
analysis of a prefix, before the whole document is analysed.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from dask_prep.config import Config, EntityConfig, Rule
from dask_prep.examples import find_example_entities, find_repeated_entities
from dask_prep.progressive import MAX_CHUNK, PREFIX, WHOLE, ProgressStats, analyse_progressively
from dask_prep.reading import Document

# Runs, not single characters: summing the lengths of a few hundred matches is faster than
# listing every character (these rules see every document that passes `length`).
_HANGUL_RUN = re.compile("[가-힣]+")
# `\w` is exactly "str.isalnum() or '_'" (checked over every code point in the tests), so a
# symbol is a character in these runs, or an underscore.
_SYMBOL_RUN = re.compile(r"[^\w \n\t]+")

# Histogram bin edges of the measured values in the report. A rule's own thresholds are
# added as edges, so the histogram shows exactly where they cut.
FRACTION_EDGES: tuple[float, ...] = tuple(round(i * 0.05, 2) for i in range(21))
# fmt: off
COUNT_EDGES: tuple[float, ...] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000,
                                  10_000, 20_000, 50_000, 100_000, 1_000_000)
# fmt: on


class QualityFilter:
    name: ClassVar[str]
    needs_analysis: ClassVar[bool] = False
    edges: ClassVar[tuple[float, ...]] = FRACTION_EDGES  # most rules measure a fraction
    # True for an analysis rule whose value over a text is the sum of its values over
    # consecutive pieces of it (a count of tokens): more text can only raise it, so once a
    # prefix's value is above `max` the verdict is final (progressive analysis).
    additive: ClassVar[bool] = False
    # Where in a text the rule is likely to decide (progressive analysis ends a chunk just
    # after the next match); None = anywhere. It only steers the chunking, never a verdict.
    hint: ClassVar[re.Pattern | None] = None

    def __init__(self, rule: Rule, config: Config) -> None:
        self.min = rule.min
        self.max = rule.max

    @property
    def decides_early(self) -> bool:
        """Whether a prefix's analysis can reject: an additive value with an upper bound."""
        return self.needs_analysis and self.additive and self.max is not None

    def measure(self, doc: Document) -> float:
        raise NotImplementedError

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        value = self.measure(doc)
        doc.metrics[self.name] = value
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return False, self.name
        return True


class LengthFilter(QualityFilter):
    name = "length"
    edges = COUNT_EDGES

    def measure(self, doc: Document) -> float:
        return len(doc.text)


class TooLongFilter(LengthFilter):
    """A hard bound that keeps pathological documents away from Kiwi."""

    name = "too_long"


class SentenceMarksFilter(QualityFilter):
    name = "sentence_marks"
    edges = COUNT_EDGES

    def measure(self, doc: Document) -> float:
        text = doc.text
        return text.count(".") + text.count("?") + text.count("!")


class HangulRatioFilter(QualityFilter):
    name = "hangul_ratio"

    def measure(self, doc: Document) -> float:
        return sum(map(len, _HANGUL_RUN.findall(doc.text))) / len(doc.text)


class SymbolRatioFilter(QualityFilter):
    name = "symbol_ratio"

    def measure(self, doc: Document) -> float:
        """Characters that are neither letters/digits (`str.isalnum`) nor space, newline or tab."""
        text = doc.text
        symbols = sum(map(len, _SYMBOL_RUN.findall(text))) + text.count("_")
        return symbols / len(text)


class NNPRatioFilter(QualityFilter):
    name = "nnp_ratio"
    needs_analysis = True

    def measure(self, doc: Document) -> float:
        tokens = doc.tokens
        return sum(1 for t in tokens if t.tag == "NNP") / len(tokens) if tokens else 0.0


# A Korean pronoun (Kiwi's NP) as a word of its own: the forms that are also other words
# (그 "that", 이 "this", 저, 나, ...) only with a particle after them. Where a document's
# first NP probably is, for progressive analysis; Kiwi's analysis decides.
_PARTICLE = (
    "(?:은|는|이|가|을|를|의|에|에게|에서|와|과|도|로|으로|만|들|들은|들이|들의|들을|들에게|"
    "께서|한테|랑|보다|부터|까지|처럼|라고|야|요)"
)
_AMBIGUOUS_PRONOUN = "(?:그|이|저|나|너|니|지)"
_PRONOUN = (
    "(?:그녀|그들|그것|그거|그곳|이것|이거|이곳|이들|저것|저거|저곳|저기|저희|우리|너희|당신|여기|"
    "거기|누구|무엇|뭐|무어|어디|언제|자기|자신|여러분|그대|내가|제가|네가|난|넌|뭔가)"
)
PRONOUN_HINT = re.compile(rf"(?<![가-힣])(?:{_AMBIGUOUS_PRONOUN}{_PARTICLE}|{_PRONOUN}{_PARTICLE}?)(?![가-힣])")


class PronounFilter(QualityFilter):
    name = "pronoun"
    needs_analysis = True
    edges = COUNT_EDGES
    additive = True
    hint = PRONOUN_HINT

    def measure(self, doc: Document) -> float:
        return sum(1 for t in doc.tokens if t.tag == "NP")


class RepeatedEntityFilter(QualityFilter):
    """Keeps documents with an entity mentioned often enough; the entities are kept too."""

    name = "no_repeated_entity"
    needs_analysis = True
    edges = COUNT_EDGES

    def __init__(self, rule: Rule, config: Config) -> None:
        super().__init__(rule, config)
        self.entity_config: EntityConfig = config.entities

    def measure(self, doc: Document) -> float:
        doc.entities = find_repeated_entities(doc.tokens, self.entity_config)
        return len(doc.entities)


FILTERS: dict[str, type[QualityFilter]] = {
    cls.name: cls
    for cls in (
        LengthFilter,
        TooLongFilter,
        SentenceMarksFilter,
        HangulRatioFilter,
        SymbolRatioFilter,
        NNPRatioFilter,
        PronounFilter,
        RepeatedEntityFilter,
    )
}


def rule_edges(name: str, rule: Rule) -> list[float]:
    """The histogram edges of one rule: its class's edges plus its own thresholds."""
    edges = set(FILTERS[name].edges)
    edges.update(x for x in (rule.min, rule.max) if x is not None)
    return sorted(edges)


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
            edges = rule_edges(name, rule)
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


def analysis_mode(config: Config) -> str:
    """The analysis mode: "progressive" when configured and an enabled rule can decide early, else "full"."""
    if config.analysis.progressive:
        for name, rule in config.rules.items():
            if rule.enabled and FILTERS[name](rule, config).decides_early:
                return "progressive"
    return "full"


class FilterChain:
    """The enabled rules of a config, split into the cheap ones and the Kiwi ones.

    In progressive mode (`analysis_mode`) the rules that decide early judge first among the
    analysis rules (`judging_order`), so a document with a pronoun is rejected as `pronoun` whether a chunk
    or its whole analysis showed it. `progressive` overrides the config's mode (False: every
    candidate analysed whole).
    """

    def __init__(self, config: Config, progressive: bool | None = None) -> None:
        enabled = [FILTERS[name](rule, config) for name, rule in config.rules.items() if rule.enabled]
        self.cheap = [f for f in enabled if not f.needs_analysis]
        self.analysed = [f for f in enabled if f.needs_analysis]
        self.early = [f for f in self.analysed if f.decides_early]
        self.progressive = bool(self.early) and (
            analysis_mode(config) == "progressive" if progressive is None else progressive
        )
        # The order the analysis rules judge in: as configured, or the early ones first.
        self.judging_order = list(self.analysed)
        if self.progressive:
            self.judging_order = self.early + [f for f in self.analysed if f not in self.early]
        self.entity_config = config.entities
        # Documents that reached the analysis and their characters (what a full analysis
        # gives Kiwi), for throughput figures; `progress.kiwi_chars` is what Kiwi analysed.
        self.analysed_docs = 0
        self.analysed_chars = 0
        self.progress = ProgressStats()
        self.max_chunk = MAX_CHUNK

    @property
    def mode(self) -> str:
        return "progressive" if self.progressive else "full"

    @staticmethod
    def _apply(filters: list[QualityFilter], doc: Document) -> bool:
        for f in filters:
            verdict = f.filter(doc)
            if verdict is not True:
                doc.rejected_by = verdict[1]
                return False
        return True

    def run(
        self, docs: list[Document], analyse: Any, on_progress: Callable[[int, int], None] | None = None
    ) -> Iterator[Document]:
        """Judge every document; yield the kept ones with `tokens` and `entities` set.

        `analyse(texts)` yields one token list per text (Kiwi's batch tokenize), or an
        Exception object for a text it could not analyse. `on_progress(judged, kept)`, if
        given, is called before each analysis with the documents judged and kept so far.
        """
        to_analyse = [d for d in docs if d.rejected_by is None and self._apply(self.cheap, d)]
        self.analysed_docs += len(to_analyse)
        self.analysed_chars += sum(len(d.text) for d in to_analyse)
        already_judged = len(docs) - len(to_analyse)
        if self.progressive:
            # Documents finish in rounds (early rejections first); the kept ones are yielded in
            # input order, as with full analysis, so stage-1 parts are the same in both modes.
            kept: set[int] = set()
            finished_before = self.progress.finished

            def tell() -> None:  # documents decided so far, early or whole; throttled by the callee
                on_progress(already_judged + self.progress.finished - finished_before, len(kept))

            finished = analyse_progressively(
                to_analyse, self.early, analyse, self.progress, self.max_chunk, tell if on_progress else None
            )
            kept.update(id(doc) for doc in self._judge(finished))
            yield from (doc for doc in to_analyse if id(doc) in kept)
        else:
            analysed = zip(to_analyse, analyse([d.text for d in to_analyse]), strict=True)
            yield from self._judge(analysed, already_judged, on_progress)

    def _judge(
        self,
        analysed: Iterable[tuple[Document, Any]],
        judged: int = 0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[Document]:
        """The analysis rules on each (document, analysis or Exception); yields the kept ones.

        `on_progress(judged, kept)` is called before each document with the counts so far.
        """
        kept = 0
        for doc, tokens in analysed:
            if on_progress is not None:
                on_progress(judged, kept)
            judged += 1
            if not self.progressive:
                doc.analysis = WHOLE
                doc.kiwi_chars = len(doc.text)
                self.progress.kiwi_chars += len(doc.text)
            if isinstance(tokens, Exception):
                # A crash or hang found in isolation (`isolation.AnalysisFailed`) says which.
                doc.rejected_by = getattr(tokens, "rejection", "analysis_error")
                continue
            doc.tokens = tokens
            if not self._apply(self.judging_order, doc):
                doc.tokens = None
                continue
            if doc.entities is None:
                doc.entities = find_repeated_entities(tokens, self.entity_config)
            doc.example_entities = (
                doc.entities
                if self.entity_config.mentions == "nnp"
                else find_example_entities(doc.text, tokens, self.entity_config)
            )
            doc.tokens = None  # the analysis is no longer needed; free it early
            kept += 1
            yield doc


def kiwi_analyser(kiwi: Any, batch: bool | None = None) -> Any:
    """`analyse(texts)`: one token list per text, or the Exception Kiwi raised for it.

    A Kiwi with one thread (`--kiwi-threads 1`, e.g. one worker process per core)
    analyses each text in the calling thread. Its batch mode would add a second thread
    per process; with every core already running a worker, the threads compete for the
    cores and stage 1 is slower in batch (benchmarks/HISTORY.md, the layouts). A Kiwi with
    several threads (`--kiwi-threads`) analyses the list in batch on its own threads.
    """
    if batch is None:
        batch = getattr(kiwi, "num_workers", 1) > 1

    def one_by_one(texts: list[str]) -> Iterator[Any]:
        for text in texts:
            try:
                yield kiwi.tokenize(text)
            except Exception as exc:
                yield exc

    def in_batch(texts: list[str]) -> Iterator[Any]:
        if not texts:
            return
        done = 0
        try:
            for tokens in kiwi.tokenize(texts):
                done += 1
                yield tokens
        except Exception:
            # The batch stopped at one bad document: redo the rest one by one.
            yield from one_by_one(texts[done:])

    return in_batch if batch else one_by_one


# The FineWeb-2 rules live in their own module and add themselves to FILTERS; imported
# last because they subclass QualityFilter.
import dask_prep.web_filters  # noqa: E402, F401
