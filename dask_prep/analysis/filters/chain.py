"""The chain of a config's enabled rules over a partition's documents, and Kiwi's analyser.

Rules that need no morphological analysis run first; the rest share one Kiwi analysis per
document (`doc.tokens`). With progressive analysis (dask_prep/analysis/progressive.py) a rule that
`decides_early` may reject a document on the analysis of a prefix, before the whole
document is analysed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dask_prep.analysis.filters.base import QualityFilter
from dask_prep.analysis.filters.registry import FILTERS
from dask_prep.analysis.progressive import MAX_CHUNK, WHOLE, ProgressStats, analyse_progressively
from dask_prep.config import Config
from dask_prep.coref.entities import find_repeated_entities
from dask_prep.coref.kept_analysis import encode_tokens, stored_tokens
from dask_prep.document import Document


def analysis_mode(config: Config) -> str:
    """The analysis mode: "progressive" when configured and an enabled rule can decide early, else "full"."""
    if config.analysis.progressive:
        for name, rule in config.rules.items():
            if rule.enabled and FILTERS[name].configured(rule, config).decides_early:
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
        enabled = [FILTERS[name].configured(rule, config) for name, rule in config.rules.items() if rule.enabled]
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
            # What stage 1 stores of the analysis: the entity step (`coref.kept_analysis.document_entities`)
            # reads it, in `run` and in `derive`; Kiwi's objects are freed.
            doc.kept_tokens = encode_tokens(doc.text, stored_tokens(tokens))
            doc.tokens = None
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
