"""FineWeb-2 quality rules: datatrove's Gopher repetition, FineWeb quality and Gopher quality.

Each check of datatrove's three filters is its own rule here, named after the reason
datatrove drops a document with (`dup_line_frac`, `top_2_gram`, `duplicated_5_n_grams`,
`line_punct_ratio`, `gopher_short_doc`, ...), and measures the value that datatrove
compares with its threshold. The definitions follow datatrove 0.10
(`pipeline/filters/gopher_repetition_filter.py`, `fineweb_quality_filter.py`,
`gopher_quality_filter.py`, `utils/text.py`, `utils/word_tokenizers.py`) exactly, quirks
included, so that the FineWeb-2 thresholds mean what they meant when they were tuned.

Rules that only look at lines or characters run before Kiwi; the word rules read the
words of the one shared analysis (dask_prep/analysis/filters/words.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from dask_prep.analysis.filters.base import COUNT_EDGES, QualityFilter
from dask_prep.analysis.filters.words import (
    TERMINAL_PUNCTUATION,
    NGramText,
    duplicated_ngram_chars,
    find_duplicates,
    top_ngram_chars,
    word_view,
)
from dask_prep.document import Document

# FineWeb-2's Korean (kor_Hang) stop words, from its configs/kor_Hang.yml.
FINEWEB2_KO_STOP_WORDS = (
    "의", "다", "이", "는", "에", "을", "한", "년", "하", "은", "를",
    "했", "고", "에서", "가", "있", "으로", "인", "월", "로", "되",
)  # fmt: skip
FINEWEB2_SHORT_LINE_LENGTH = 30  # datatrove's default; FineWeb-2 turns the rule off

_LINE_END_PUNCT = tuple(TERMINAL_PUNCTUATION)  # str.endswith takes a tuple
_LINE_SPLIT = re.compile("\n+")  # GopherRepetitionFilter's line splitter


def _nonblank_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip() != ""]


# ---- Gopher repetition -----------------------------------------------------------------


class DupLineFracFilter(QualityFilter):
    """Share of lines (split on runs of newlines) that repeat an earlier line."""

    def measure(self, doc: Document) -> float:
        lines = _LINE_SPLIT.split(doc.text)
        return find_duplicates(lines)[0] / len(lines)


class NGramFilter(QualityFilter):
    """Characters in word n-grams, over the text length; `chars(ngrams, n)` counts them.

    `top_ngram_chars`: the most frequent n-gram times its count (Gopher's top n-grams);
    `duplicated_ngram_chars`: the repeated n-grams (Gopher's duplicated n-grams).
    """

    needs_analysis = True

    def __init__(self, name: str, n: int, chars: Callable[[NGramText, int], int]) -> None:
        super().__init__(name)
        self.n = n
        self.chars = chars

    def measure(self, doc: Document) -> float:
        return self.chars(word_view(doc).ngrams, self.n) / len(doc.text)


# Named with datatrove's drop reasons.
TOP_NGRAM_FILTERS = tuple(NGramFilter(f"top_{n}_gram", n, top_ngram_chars) for n in (2, 3, 4))
DUPLICATED_NGRAM_FILTERS = tuple(
    NGramFilter(f"duplicated_{n}_n_grams", n, duplicated_ngram_chars) for n in range(5, 11)
)


# ---- FineWeb quality -------------------------------------------------------------------


class LinePunctRatioFilter(QualityFilter):
    """Share of non-blank lines that end in terminal punctuation (0 for no such line)."""

    def measure(self, doc: Document) -> float:
        lines = _nonblank_lines(doc.text)
        if not lines:
            return 0.0  # datatrove drops these as "empty"
        return sum(1 for line in lines if line.endswith(_LINE_END_PUNCT)) / len(lines)


class ShortLineRatioFilter(QualityFilter):
    """Share of non-blank lines of at most 30 characters (off in FineWeb-2)."""

    def measure(self, doc: Document) -> float:
        lines = _nonblank_lines(doc.text)
        if not lines:
            return 0.0
        return sum(1 for line in lines if len(line) <= FINEWEB2_SHORT_LINE_LENGTH) / len(lines)


class CharDupRatioFilter(QualityFilter):
    """Characters in repeated non-blank lines, over the characters that are not newlines."""

    def measure(self, doc: Document) -> float:
        chars = len(doc.text) - doc.text.count("\n")
        return find_duplicates(_nonblank_lines(doc.text))[1] / max(chars, 1)


class MarksPerWordFilter(QualityFilter):
    """Occurrences of some marks in the text (newlines, '#', ellipses) per word."""

    needs_analysis = True

    def __init__(self, name: str, marks: tuple[str, ...]) -> None:
        super().__init__(name)
        self.marks = marks

    def measure(self, doc: Document) -> float:
        text = doc.text
        # datatrove divides by zero on a document without words; one word's worth keeps it finite
        return sum(text.count(mark) for mark in self.marks) / max(len(word_view(doc).words), 1)


# ---- Gopher quality --------------------------------------------------------------------


class NonSymbolWordsFilter(QualityFilter):
    """Words that are not all punctuation (datatrove's short and long document checks)."""

    needs_analysis = True
    edges = COUNT_EDGES

    def measure(self, doc: Document) -> float:
        return len(word_view(doc).non_symbol_words)


class MeanWordLengthFilter(QualityFilter):
    """Mean length of the words that are not all punctuation (0 without any)."""

    needs_analysis = True
    edges = tuple(i / 2 for i in range(31))  # characters per word, 0 to 15

    def measure(self, doc: Document) -> float:
        words = word_view(doc).non_symbol_words
        return sum(len(w) for w in words) / len(words) if words else 0.0


class BulletLinesFilter(QualityFilter):
    """Share of lines (str.splitlines) starting with '•' or '-'."""

    def measure(self, doc: Document) -> float:
        lines = doc.text.splitlines()
        return sum(1 for s in lines if s.lstrip().startswith(("•", "-"))) / max(len(lines), 1)


class EndEllipsisLinesFilter(QualityFilter):
    """Share of lines (str.splitlines) ending in '...' or '…'."""

    def measure(self, doc: Document) -> float:
        lines = doc.text.splitlines()
        return sum(1 for s in lines if s.rstrip().endswith(("...", "…"))) / max(len(lines), 1)


class AlphaWordsFilter(QualityFilter):
    """Share of words with at least one alphabetic character (Hangul counts)."""

    needs_analysis = True

    def measure(self, doc: Document) -> float:
        words = word_view(doc).words
        return sum(1 for w in words if any(map(str.isalpha, w))) / max(len(words), 1)


class StopWordsFilter(QualityFilter):
    """How many distinct FineWeb-2 Korean stop words occur as words."""

    needs_analysis = True
    edges = tuple(range(len(FINEWEB2_KO_STOP_WORDS) + 1))
    stop_words: ClassVar[frozenset[str]] = frozenset(FINEWEB2_KO_STOP_WORDS)

    def measure(self, doc: Document) -> float:
        return len(self.stop_words.intersection(word_view(doc).words))


# In datatrove's order; the two sides of a two-sided check are two rules, each with its own
# threshold, switch and report entry.
FINEWEB2_RULES: tuple[QualityFilter, ...] = (
    DupLineFracFilter("dup_line_frac"),
    *TOP_NGRAM_FILTERS,
    *DUPLICATED_NGRAM_FILTERS,
    LinePunctRatioFilter("line_punct_ratio"),
    ShortLineRatioFilter("short_line_ratio"),
    CharDupRatioFilter("char_dup_ratio"),
    MarksPerWordFilter("list_ratio", ("\n",)),
    NonSymbolWordsFilter("gopher_short_doc"),
    NonSymbolWordsFilter("gopher_long_doc"),
    MeanWordLengthFilter("gopher_below_avg_threshold"),
    MeanWordLengthFilter("gopher_above_avg_threshold"),
    MarksPerWordFilter("gopher_too_many_hashes", ("#",)),
    MarksPerWordFilter("gopher_too_many_ellipsis", ("...", "…")),
    BulletLinesFilter("gopher_too_many_bullets"),
    EndEllipsisLinesFilter("gopher_too_many_end_ellipsis"),
    AlphaWordsFilter("gopher_below_alpha_threshold"),
    StopWordsFilter("gopher_enough_stop_words"),
)
