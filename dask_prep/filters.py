"""Quality filters: each rule is a small class that measures one value of a document.

As in datatrove, `filter(doc)` returns True to keep or `(False, reason)` to drop; the
reason is the rule's name, and the measured value is left in `doc.metrics` for the report
and the per-document decisions. Rules that need no morphological analysis run first;
the rest share one Kiwi analysis per document (`doc.tokens`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from dask_prep.config import Config, EntityConfig, Rule
from dask_prep.examples import find_repeated_entities
from dask_prep.reading import Document

_HANGUL = re.compile("[가-힣]")
_SENTENCE_MARK = re.compile(r"[.?!]")
_WHITESPACE_KEPT = frozenset(" \n\t")


class QualityFilter:
    name: ClassVar[str]
    needs_analysis: ClassVar[bool] = False

    def __init__(self, rule: Rule, config: Config) -> None:
        self.min = rule.min
        self.max = rule.max

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

    def measure(self, doc: Document) -> float:
        return len(doc.text)


class TooLongFilter(LengthFilter):
    """A hard bound that keeps pathological documents away from Kiwi."""

    name = "too_long"


class SentenceMarksFilter(QualityFilter):
    name = "sentence_marks"

    def measure(self, doc: Document) -> float:
        return len(_SENTENCE_MARK.findall(doc.text))


class HangulRatioFilter(QualityFilter):
    name = "hangul_ratio"

    def measure(self, doc: Document) -> float:
        return len(_HANGUL.findall(doc.text)) / len(doc.text)


class SymbolRatioFilter(QualityFilter):
    name = "symbol_ratio"

    def measure(self, doc: Document) -> float:
        text = doc.text
        symbols = sum(1 for ch in text if not ch.isalnum() and ch not in _WHITESPACE_KEPT)
        return symbols / len(text)


class NNPRatioFilter(QualityFilter):
    name = "nnp_ratio"
    needs_analysis = True

    def measure(self, doc: Document) -> float:
        tokens = doc.tokens
        return sum(1 for t in tokens if t.tag == "NNP") / len(tokens) if tokens else 0.0


class PronounFilter(QualityFilter):
    name = "pronoun"
    needs_analysis = True

    def measure(self, doc: Document) -> float:
        return sum(1 for t in doc.tokens if t.tag == "NP")


class RepeatedEntityFilter(QualityFilter):
    """Keeps documents with an entity mentioned often enough; the entities are kept too."""

    name = "no_repeated_entity"
    needs_analysis = True

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


class FilterChain:
    """The enabled rules of a config, split into the cheap ones and the Kiwi ones."""

    def __init__(self, config: Config) -> None:
        enabled = [FILTERS[name](rule, config) for name, rule in config.rules.items() if rule.enabled]
        self.cheap = [f for f in enabled if not f.needs_analysis]
        self.analysed = [f for f in enabled if f.needs_analysis]
        self.entity_config = config.entities
        self.analysed_docs = 0  # documents sent to Kiwi, for throughput figures
        self.analysed_chars = 0

    @staticmethod
    def _apply(filters: list[QualityFilter], doc: Document) -> bool:
        for f in filters:
            verdict = f.filter(doc)
            if verdict is not True:
                doc.rejected_by = verdict[1]
                return False
        return True

    def run(self, docs: list[Document], analyse: Any) -> Iterator[Document]:
        """Judge every document; yield the kept ones with `tokens` and `entities` set.

        `analyse(texts)` yields one token list per text (Kiwi's batch tokenize), or an
        Exception object for a text it could not analyse.
        """
        to_analyse = [d for d in docs if d.rejected_by is None and self._apply(self.cheap, d)]
        self.analysed_docs += len(to_analyse)
        self.analysed_chars += sum(len(d.text) for d in to_analyse)
        for doc, tokens in zip(to_analyse, analyse([d.text for d in to_analyse]), strict=True):
            if isinstance(tokens, Exception):
                doc.rejected_by = "analysis_error"
                continue
            doc.tokens = tokens
            if not self._apply(self.analysed, doc):
                doc.tokens = None
                continue
            if doc.entities is None:
                doc.entities = find_repeated_entities(tokens, self.entity_config)
            doc.tokens = None  # the analysis is no longer needed; free it early
            yield doc


def kiwi_analyser(kiwi: Any) -> Any:
    """Batch analysis on Kiwi's own threads; a failing document fails alone."""

    def analyse(texts: list[str]) -> Iterable[Any]:
        if not texts:
            return
        done = 0
        try:
            for tokens in kiwi.tokenize(texts):
                done += 1
                yield tokens
        except Exception:
            # The batch stopped at one bad document: redo the rest one by one.
            for text in texts[done:]:
                try:
                    yield kiwi.tokenize(text)
                except Exception as exc:
                    yield exc

    return analyse


# The FineWeb-2 rules live in their own module and add themselves to FILTERS; imported
# last because they subclass QualityFilter.
import dask_prep.web_filters  # noqa: E402, F401
