"""The seed-v2 rules: length, sentence marks, Hangul and symbol ratios, then on Kiwi's
analysis the share of proper nouns, pronouns and a repeated entity.

Rules that need no morphological analysis run first; the rest share one Kiwi analysis
per document (`doc.tokens`). With progressive analysis (dask_prep/analysis/progressive.py) the
`pronoun` rule may reject a document on the analysis of a prefix.
"""

from __future__ import annotations

import re

from dask_prep.analysis.filters.base import COUNT_EDGES, QualityFilter
from dask_prep.config import Config, EntityConfig, Rule
from dask_prep.coref.entities import find_repeated_entities
from dask_prep.document import Document

# Runs, not single characters: summing the lengths of a few hundred matches is faster than
# listing every character (these rules see every document that passes `length`).
_HANGUL_RUN = re.compile("[가-힣]+")
# `\w` is exactly "str.isalnum() or '_'" (checked over every code point in the tests), so a
# symbol is a character in these runs, or an underscore.
_SYMBOL_RUN = re.compile(r"[^\w \n\t]+")


class LengthFilter(QualityFilter):
    """Characters in the document."""

    edges = COUNT_EDGES

    def measure(self, doc: Document) -> float:
        return len(doc.text)


class SentenceMarksFilter(QualityFilter):
    edges = COUNT_EDGES

    def measure(self, doc: Document) -> float:
        text = doc.text
        return text.count(".") + text.count("?") + text.count("!")


class HangulRatioFilter(QualityFilter):
    def measure(self, doc: Document) -> float:
        return sum(map(len, _HANGUL_RUN.findall(doc.text))) / len(doc.text)


class SymbolRatioFilter(QualityFilter):
    def measure(self, doc: Document) -> float:
        """Characters that are neither letters/digits (`str.isalnum`) nor space, newline or tab."""
        text = doc.text
        symbols = sum(map(len, _SYMBOL_RUN.findall(text))) + text.count("_")
        return symbols / len(text)


class NNPRatioFilter(QualityFilter):
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
    needs_analysis = True
    edges = COUNT_EDGES
    additive = True
    hint = PRONOUN_HINT

    def measure(self, doc: Document) -> float:
        return sum(1 for t in doc.tokens if t.tag == "NP")


class RepeatedEntityFilter(QualityFilter):
    """Keeps documents with an entity mentioned often enough; the entities are kept too."""

    needs_analysis = True
    edges = COUNT_EDGES
    entity_config: EntityConfig

    def configured(self, rule: Rule, config: Config) -> RepeatedEntityFilter:
        configured = super().configured(rule, config)
        configured.entity_config = config.entities
        return configured

    def measure(self, doc: Document) -> float:
        doc.entities = find_repeated_entities(doc.tokens, self.entity_config)
        return len(doc.entities)


SEED_V2_RULES: tuple[QualityFilter, ...] = (
    LengthFilter("length"),
    # A hard bound on the length that keeps pathological documents away from Kiwi.
    LengthFilter("too_long"),
    SentenceMarksFilter("sentence_marks"),
    HangulRatioFilter("hangul_ratio"),
    SymbolRatioFilter("symbol_ratio"),
    NNPRatioFilter("nnp_ratio"),
    PronounFilter("pronoun"),
    RepeatedEntityFilter("no_repeated_entity"),
)
