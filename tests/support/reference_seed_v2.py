"""The seed-v2 decisions in plain, single-process Python, written from issue 2's text alone.

This module deliberately imports nothing from `dask_prep`: it is the independent second
opinion that the acceptance test compares the pipeline with, so a bug in the pipeline's
filters or entity code cannot hide by being shared with the check. It reads JSON Lines
(optionally zstd-compressed) itself, builds its own `Kiwi()` with the default model and
applies the rules exactly as the issue words them:

Quality, in this order, each a named rejection reason:
1. length: 800 <= len(text) <= 2500
2. sentence_marks: count of '.', '?', '!' >= 3
3. hangul_ratio: [가-힣] characters / len(text) >= 0.4
4. symbol_ratio: characters neither isalnum() nor space/newline/tab, over len(text), <= 0.3
5. nnp_ratio: NNP tokens / all tokens in [0.05, 0.20]
6. pronoun: any NP token drops the document
7. no_repeated_entity: NNP tokens of >= 2 characters, grouped by form, excluding the stop
   entities; an entity qualifies with >= 2 mentions; no qualifying entity drops the document.

Issue 21 (progressive analysis, the pipeline's default) reports a document with an NP
under `pronoun` even when its NNP ratio would also fail: `pronoun_first=True` checks 6
before 5. Which documents are kept is the same in either order.

Examples: the first mention (by character position) of each qualifying entity is the
antecedent; mentions 2, 3 and 4 each give one example when 10 <= start - antecedent start
<= 2000.

Issue 22 changed which mentions give examples (not which documents are kept): a mention is
an NNP, or NNPs written together, that starts a word (after the start, whitespace or a
non-alphanumeric character) and heads it: the next morpheme of that word, if any, is a
particle (J*), an ending (E*), the copula (VCP, VCN), a verb/adjective suffix (XSV, XSA,
XSM) or punctuation. Mentions are grouped by the text they cover, and an example whose
antecedent shares a token with neighbouring text is dropped (`boundary`).
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LENGTH_MIN, LENGTH_MAX = 800, 2500
MIN_SENTENCE_MARKS = 3
MIN_HANGUL_RATIO = 0.4
MAX_SYMBOL_RATIO = 0.3
NNP_RATIO_MIN, NNP_RATIO_MAX = 0.05, 0.20
ENTITY_MIN_CHARS = 2
ENTITY_MIN_MENTIONS = 2
STOP_ENTITIES = frozenset("것 수 등 때 곳 점 년 월 일".split())
MASKED_MENTIONS = 3  # mentions 2, 3 and 4
MIN_DISTANCE, MAX_DISTANCE = 10, 2000

Example = tuple[str, str, int, int]  # (doc_id, target, antecedent_pos, coref_pos)


def read_jsonl(path: str, text_field: str = "text", id_field: str = "id") -> Iterator[tuple[str, str]]:
    """(doc_id, text) for each line; ids fall back to '<file name>:<line>' (1-based)."""
    import os

    name = os.path.basename(path)
    if path.endswith(".zst"):
        import zstandard

        with open(path, "rb") as raw:
            data = zstandard.ZstdDecompressor().stream_reader(raw).read()
        handle: Any = io.StringIO(data.decode("utf-8"))
    else:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        for line_no, line in enumerate(handle, 1):
            record = json.loads(line)
            doc_id = record.get(id_field)
            yield (str(doc_id) if doc_id is not None else f"{name}:{line_no}"), record[text_field]
    finally:
        handle.close()


def cheap_rejection(text: str) -> str | None:
    """The first of rules 1-4 that rejects `text`, or None."""
    n = len(text)
    if not LENGTH_MIN <= n <= LENGTH_MAX:
        return "length"
    if sum(text.count(mark) for mark in ".?!") < MIN_SENTENCE_MARKS:
        return "sentence_marks"
    if sum(1 for ch in text if "가" <= ch <= "힣") / n < MIN_HANGUL_RATIO:
        return "hangul_ratio"
    if sum(1 for ch in text if not ch.isalnum() and ch not in " \n\t") / n > MAX_SYMBOL_RATIO:
        return "symbol_ratio"
    return None


def nnp_mentions(tokens: list[Any]) -> list[tuple[str, int, int]]:
    """(form, start, end) of every NNP token, in text order."""
    return [(t.form, t.start, t.start + t.len) for t in tokens if t.tag == "NNP"]


def group_mentions(mentions: list[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    """{name: [(start, end), ...] in text order} for names that qualify as entities.

    `mentions` are (name, start, end); the name is Kiwi's form, or the surface text when
    a caller wants to see whether grouping by surface would decide differently.
    """
    grouped: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for name, start, end in mentions:
        if len(name) >= ENTITY_MIN_CHARS and name not in STOP_ENTITIES:
            grouped[name].append((start, end))
    return {name: sorted(spans) for name, spans in grouped.items() if len(spans) >= ENTITY_MIN_MENTIONS}


def repeated_entities(tokens: list[Any]) -> dict[str, list[tuple[int, int]]]:
    """Entities grouped by Kiwi's form, as the pipeline's design says."""
    return group_mentions(nnp_mentions(tokens))


HEAD_MAY_BE_FOLLOWED_BY = {"VCP", "VCN", "XSV", "XSA", "XSM", "SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB"}


def _may_follow(tag: str) -> bool:
    return tag[0] in "JE" or tag.split("-")[0] in HEAD_MAY_BE_FOLLOWED_BY


def word_head_mentions(text: str, tokens: list[Any]) -> list[tuple[str, int, int]]:
    """(surface, start, end) of issue 22's mentions, in text order."""
    toks = [t for t in tokens if t.len > 0]
    runs: list[list[int]] = []  # [start, end, index of the token after the run]
    for i, t in enumerate(toks):
        if t.tag != "NNP":
            continue
        if runs and runs[-1][2] == i and runs[-1][1] == t.start:
            runs[-1][1], runs[-1][2] = t.start + t.len, i + 1
        else:
            runs.append([t.start, t.start + t.len, i + 1])
    out = []
    for start, end, after in runs:
        if start > 0 and text[start - 1].isalnum():
            continue  # inside a word
        nxt = toks[after] if after < len(toks) else None
        if nxt is not None and nxt.start <= end:
            if not _may_follow(nxt.tag):
                continue  # not the head of its word
        elif end < len(text) and text[end].isalnum():
            continue
        out.append((text[start:end], start, end))
    return out


def example_entities(text: str, tokens: list[Any]) -> dict[str, list[tuple[int, int]]]:
    """Issue 22's entities: whole-word mentions grouped by their text."""
    mentions = [(s, a, b) for s, a, b in word_head_mentions(text, tokens) if "\n" not in s]
    return group_mentions(mentions)


def antecedent_is_exact(tokenizer: Any, text: str, target: str, antecedent: int, start: int, end: int) -> bool:
    """Whether the tokens covering the antecedent in the whole-masked text cover nothing else."""
    k = len(tokenizer(target, add_special_tokens=False)["input_ids"])
    masked = text[:start] + tokenizer.mask_token * k + text[end:]
    offsets = tokenizer(masked, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    last = antecedent + len(target)
    covering = [(s, e) for s, e in offsets if s < last and e > antecedent]
    return all(antecedent <= s and e <= last for s, e in covering)


def analysed_rejection(tokens: list[Any], pronoun_first: bool = False) -> str | None:
    """The first of rules 5-7 (6 before 5 with `pronoun_first`) that rejects a document with
    these Kiwi tokens, or None."""
    if pronoun_first and any(t.tag == "NP" for t in tokens):
        return "pronoun"
    nnp = sum(1 for t in tokens if t.tag == "NNP")
    ratio = nnp / len(tokens) if tokens else 0.0
    if not NNP_RATIO_MIN <= ratio <= NNP_RATIO_MAX:
        return "nnp_ratio"
    if any(t.tag == "NP" for t in tokens):
        return "pronoun"
    if not repeated_entities(tokens):
        return "no_repeated_entity"
    return None


def examples_of(doc_id: str, entities: dict[str, list[tuple[int, int]]]) -> list[Example]:
    out = []
    for target, spans in entities.items():
        antecedent = spans[0][0]
        for start, _ in spans[1 : 1 + MASKED_MENTIONS]:
            if MIN_DISTANCE <= start - antecedent <= MAX_DISTANCE:
                out.append((doc_id, target, antecedent, start))
    return out


@dataclass
class ReferenceResult:
    decisions: dict[str, str | None] = field(default_factory=dict)  # doc_id -> reason (None = kept)
    texts: dict[str, str] = field(default_factory=dict)  # documents that reached rule 7
    entities: dict[str, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)
    # Issue 22's entities (whole-word mentions grouped by text), which give `examples`.
    example_entities: dict[str, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)
    # NNP mentions of every document that reached rule 7 (to regroup them by surface text).
    mentions: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    examples: set[Example] = field(default_factory=set)
    # Entity mentions whose text differs from Kiwi's form: (doc_id, form, surface, start).
    surface_mismatches: list[tuple[str, str, str, int]] = field(default_factory=list)

    @property
    def kept(self) -> set[str]:
        return {d for d, reason in self.decisions.items() if reason is None}

    def rejected_counts(self) -> Counter:
        return Counter(r for r in self.decisions.values() if r is not None)


def run_reference(
    path: str, kiwi: Any = None, *, max_docs: int | None = None, pronoun_first: bool = False
) -> ReferenceResult:
    """Judge every document of one JSON Lines file, one at a time, in this process."""
    if kiwi is None:
        from kiwipiepy import Kiwi

        kiwi = Kiwi()
    result = ReferenceResult()
    for n, (doc_id, text) in enumerate(read_jsonl(path)):
        if max_docs is not None and n >= max_docs:
            break
        assert doc_id not in result.decisions, f"duplicate id {doc_id} in {path}"
        reason = cheap_rejection(text)
        if reason is None:
            tokens = kiwi.tokenize(text)
            reason = analysed_rejection(tokens, pronoun_first)
            if reason in (None, "no_repeated_entity"):
                result.mentions[doc_id] = nnp_mentions(tokens)
                result.texts[doc_id] = text
            if reason is None:
                entities = repeated_entities(tokens)
                result.entities[doc_id] = entities
                result.example_entities[doc_id] = example_entities(text, tokens)
                result.examples.update(examples_of(doc_id, result.example_entities[doc_id]))
                for form, spans in entities.items():
                    for start, end in spans:
                        if text[start:end] != form:
                            result.surface_mismatches.append((doc_id, form, text[start:end], start))
        result.decisions[doc_id] = reason
    return result


def fits_window(tokenizer: Any, text: str, target: str, antecedent: int, start: int, end: int, seq_len: int) -> bool:
    """Whether a `seq_len`-token window of the whole-masked text holds antecedent and masks.

    The masked text replaces the mention with k mask tokens, k = the target's own token
    count; special tokens around the content take their places in every window.
    """
    k = len(tokenizer(target, add_special_tokens=False)["input_ids"])
    masked = text[:start] + tokenizer.mask_token * k + text[end:]
    enc = tokenizer(masked, add_special_tokens=False, return_offsets_mapping=True)
    n_special = len(tokenizer("가")["input_ids"]) - len(tokenizer("가", add_special_tokens=False)["input_ids"])
    room = seq_len - n_special
    if len(enc["input_ids"]) <= room:
        return True
    offsets = enc["offset_mapping"]
    first = next(i for i, (_, e) in enumerate(offsets) if e > antecedent)
    mask_first = next(i for i, (s, _) in enumerate(offsets) if s >= start)
    return mask_first + k - first <= room
