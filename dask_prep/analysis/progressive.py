"""Progressive analysis: Kiwi analyses only as much of a document as its verdict needs.

A rule that can decide early (`QualityFilter.decides_early`, e.g. seed-v2's `pronoun`:
any `NP` rejects) sees the document's analysis chunk by chunk, from the start; the first
chunk that pushes its value over the rule's bound rejects the document, and the rest is
never analysed. A document no chunk rejects is analysed whole, and every rule (and the
entities and examples) uses that whole-document analysis, so what is kept, and everything
built from it, is exactly what `--full-analysis` produces.

Why the end is one whole-document analysis, not the sum of the chunks: Kiwi's analysis
of a piece of text depends on the text around it: analysed line by line, most documents get
other tokens than from one whole-document call (a title line alone, `자연보호`, is one NNG;
followed by the article, `자연` + `보호`; measured in benchmarks/README.md). So chunk
analyses are only trusted for a verdict that more text cannot undo (a pronoun found stays
found), never for the values that need the whole text.

Where a chunk ends: at the first sentence or line end after the next place where a rule
is likely to decide (`QualityFilter.hint`, for `pronoun` a Korean pronoun followed by a
particle), and at most ~`MAX_CHUNK` characters on. A document with no such place left is
analysed whole at once: it would most likely reach the end anyway, and analysing its
chunks first would only add work. The hint only chooses where chunks end; the verdict
is always Kiwi's. The measurements behind these choices are in benchmarks/README.md.

Batches: each round gives Kiwi the next piece of every document still undecided
(first chunks, then the survivors' next chunks or whole texts, ...), so Kiwi's batch mode
(`--kiwi-threads` > 1) keeps every thread busy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dask_prep.document import Document

# Sentence end: terminal punctuation (with closing quotes or brackets) before whitespace,
# or a line end. A chunk ends just after one, so Kiwi sees whole sentences.
SENTENCE_END = re.compile(r"[.?!…。][\"'”’」』)\]]*(?=\s)|\n")
# A chunk goes at most about this far past its start before ending at a sentence end,
# even when the next likely verdict is further on (benchmarks/README.md: 300-1,200 and
# unbounded were measured; the differences are small).
MAX_CHUNK = 500

PREFIX = "prefix"  # decided early, on an analysed prefix of the document
WHOLE = "whole"  # the rules saw one whole-document analysis


@dataclass
class ProgressStats:
    """What progressive analysis did: characters Kiwi analysed, documents stopped early."""

    kiwi_chars: int = 0
    stopped_early: int = 0
    chunks: int = 0  # chunk analyses (whole-document analyses not counted)
    finished: int = 0  # documents decided early or given their whole-document analysis


@dataclass
class _Undecided:
    doc: Document
    analysed_to: int = 0  # end of the prefix analysed so far
    values: dict[str, float] = field(default_factory=dict)  # early rules' values over that prefix
    whole_next: bool = False  # a chunk failed in Kiwi: the whole text decides, as in full mode


def next_chunk_end(text: str, start: int, hints: list[re.Pattern | None], max_chunk: int = MAX_CHUNK) -> int | None:
    """Where the chunk that starts at `start` ends, or None: analyse the whole document now.

    The chunk ends at the first sentence or line end at or after the end of the next hint
    match (a pattern None means "anywhere": `max_chunk` alone bounds the chunk), and no
    later than the first such end after `start + max_chunk`. None when no hint matches in
    the rest of the text, or when the chunk would reach the end of the text anyway.
    """
    target: int | None = None
    for hint in hints:
        if hint is None:
            at = start + max_chunk
        else:
            match = hint.search(text, start)
            if match is None:
                continue
            at = min(match.end(), start + max_chunk)
        target = at if target is None else min(target, at)
    if target is None:
        return None
    end = SENTENCE_END.search(text, target)
    if end is None or not text[end.end() :].strip():
        return None
    return end.end()


def analyse_progressively(
    docs: list[Document],
    rules: list[Any],
    analyse: Callable[[list[str]], Any],
    stats: ProgressStats,
    max_chunk: int = MAX_CHUNK,
    on_piece: Callable[[], None] | None = None,
) -> Iterator[tuple[Document, Any]]:
    """Yield (document, whole-document analysis or Exception) for every document no chunk decided.

    `rules` are the rules that decide early (`decides_early`; value additive over
    consecutive chunks, rejecting above `max`). A document a chunk decides gets
    `rejected_by`, the rule's value over the analysed prefix in `metrics`, and
    `analysis = "prefix"`, and is not yielded. `analyse(texts)` is the chain's analyser:
    one token list (or Exception) per text, in order. `on_piece()`, if given, is called
    after each piece is analysed (progress: `stats.finished` counts the documents done).
    """
    hints = [getattr(rule, "hint", None) for rule in rules]
    undecided = [_Undecided(doc) for doc in docs]
    while undecided:
        pieces: list[tuple[_Undecided, int | None]] = []
        texts: list[str] = []
        for state in undecided:
            text = state.doc.text
            end = None if state.whole_next else next_chunk_end(text, state.analysed_to, hints, max_chunk)
            pieces.append((state, end))
            texts.append(text if end is None else text[state.analysed_to : end])
        still: list[_Undecided] = []
        for (state, end), piece, tokens in zip(pieces, texts, analyse(texts), strict=True):
            doc = state.doc
            stats.kiwi_chars += len(piece)
            doc.kiwi_chars += len(piece)
            if on_piece is not None:
                on_piece()
            if end is None:
                doc.analysis = WHOLE
                stats.finished += 1
                yield doc, tokens
                continue
            stats.chunks += 1
            if isinstance(tokens, Exception):
                state.whole_next = True  # the whole text decides, as in full mode
                still.append(state)
                continue
            decided = _verdict(state, tokens, rules)
            if decided is not None:
                doc.rejected_by = decided
                doc.analysis = PREFIX
                stats.stopped_early += 1
                stats.finished += 1
                continue
            state.analysed_to = end
            still.append(state)
        undecided = still


def _verdict(state: _Undecided, tokens: list, rules: list[Any]) -> str | None:
    """Add a chunk's values to the prefix's; the first rule whose bound it passes, or None."""
    doc = state.doc
    doc.tokens = tokens
    try:
        for rule in rules:
            value = state.values.get(rule.name, 0) + rule.measure(doc)
            state.values[rule.name] = value
            if value > rule.max:
                doc.metrics[rule.name] = value
                return rule.above_max
    finally:
        doc.tokens = None
    return None
