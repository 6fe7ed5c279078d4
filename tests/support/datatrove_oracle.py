"""The datatrove oracle: datatrove's FineWeb-2 filters built from a dask_prep config.

Test code (datatrove is a test-only dependency): `tests/analysis/test_fineweb2.py` checks dask_prep's
`fineweb2-ko` rules against it, and `benchmarks/fineweb_vs_datatrove.py` times both.
"""

from __future__ import annotations

import functools
from typing import Any

from dask_prep.analysis.filters.fineweb2 import (
    DUPLICATED_NGRAM_FILTERS,
    FINEWEB2_KO_STOP_WORDS,
    FINEWEB2_SHORT_LINE_LENGTH,
    TOP_NGRAM_FILTERS,
)
from dask_prep.config import Config


def datatrove_filters(config: Config, language: Any = None) -> list[Any]:
    """datatrove's three filters with the thresholds of `config`'s FineWeb-2 rules.

    The oracle test and the benchmark build datatrove from the very config that dask_prep
    runs, so the two cannot drift apart. `language` is a datatrove language code or
    `WordTokenizer`; by default datatrove's Korean tokenizer on Kiwi's `cong` model
    (`cong_kiwi_tokenizer`). Needs datatrove (a test-only dependency).
    """
    if language is None:
        language = cong_kiwi_tokenizer()
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    rules = config.rules

    def bound(name: str, side: str) -> float | None:
        rule = rules.get(name)
        return getattr(rule, side) if rule is not None and rule.enabled else None

    never = float("inf")  # FineWebQualityFilter has no off switch for its ratios
    hashes, ellipsis = bound("gopher_too_many_hashes", "max"), bound("gopher_too_many_ellipsis", "max")
    if hashes != ellipsis:
        raise ValueError("datatrove has one max_symbol_word_ratio for '#' and ellipses; the two rules differ")
    return [
        GopherRepetitionFilter(
            language=language,
            dup_para_frac=0,  # 0 switches a check off; FineWeb-2 does not use these three
            dup_para_char_frac=0,
            dup_line_char_frac=0,
            dup_line_frac=bound("dup_line_frac", "max") or 0,
            top_n_grams=tuple(
                (f.n, bound(f.name, "max")) for f in TOP_NGRAM_FILTERS if bound(f.name, "max") is not None
            ),
            dup_n_grams=tuple(
                (f.n, bound(f.name, "max")) for f in DUPLICATED_NGRAM_FILTERS if bound(f.name, "max") is not None
            ),
        ),
        FineWebQualityFilter(
            language=language,
            line_punct_thr=bound("line_punct_ratio", "min") or 0,
            short_line_thr=_or(bound("short_line_ratio", "max"), never),
            short_line_length=FINEWEB2_SHORT_LINE_LENGTH,
            char_duplicates_ratio=_or(bound("char_dup_ratio", "max"), never),
            new_line_ratio=_or(bound("list_ratio", "max"), never),
        ),
        GopherQualityFilter(
            language=language,
            min_doc_words=bound("gopher_short_doc", "min"),
            max_doc_words=bound("gopher_long_doc", "max"),
            min_avg_word_length=bound("gopher_below_avg_threshold", "min"),
            max_avg_word_length=bound("gopher_above_avg_threshold", "max"),
            max_symbol_word_ratio=hashes,
            max_bullet_lines_ratio=bound("gopher_too_many_bullets", "max"),
            max_ellipsis_lines_ratio=bound("gopher_too_many_end_ellipsis", "max"),
            max_non_alpha_words_ratio=bound("gopher_below_alpha_threshold", "min"),
            min_stop_words=bound("gopher_enough_stop_words", "min"),
            stop_words=list(FINEWEB2_KO_STOP_WORDS),
        ),
    ]


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@functools.lru_cache(maxsize=1)
def cong_kiwi_tokenizer() -> Any:
    """datatrove's Korean word tokenizer on Kiwi's `cong` model, one per process.

    For kor_Hang datatrove builds `KiwiTokenizer()`, which asks Kiwi for the `sbg` model
    that kiwipiepy >= 0.22 no longer ships; datatrove takes a `WordTokenizer` wherever it
    takes a language, so this one is passed instead.
    """
    from datatrove.utils.word_tokenizers import KiwiTokenizer

    return KiwiTokenizer(model_type="cong")


def datatrove_verdicts(texts: list[str], config: Config) -> list[str | None]:
    """datatrove's first drop reason for each text (None = kept), filters in pipeline order."""
    from datatrove.data import Document as DatatroveDocument

    filters = datatrove_filters(config)
    verdicts: list[str | None] = []
    for i, text in enumerate(texts):
        doc = DatatroveDocument(text=text, id=str(i))
        reason = None
        for f in filters:
            result = f.filter(doc)
            if result is not True:
                reason = result[1] if isinstance(result, tuple) else f.name
                break
        verdicts.append(reason)
    return verdicts
