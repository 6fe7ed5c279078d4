"""Tokenization: masked texts → model inputs, with both mentions inside the window.

Each example's masked text is tokenized as a whole with the run's tokenizer
(`dask_prep.coref.tokenizer`), so the ids equal `tokenizer(masked_text)` for documents
that fit; token offsets locate the masked span and the antecedent. A document longer than `seq_len` tokens gets a
window that contains both, or the example is dropped under reason `window`: a mask is
never truncated away. Examples whose antecedent or target the vocabulary cannot spell
(unknown token) are dropped and counted too. Examples are not padded unless
`pad_to_max_length` is set.

Spans are exact: the antecedent span is the tokens whose characters (offsets, surrounding
whitespace aside) overlap the antecedent's, and an example whose antecedent shares a token
with the text around it (a piece joining the entity to a particle) is dropped under reason
`boundary`. The masked mention is always exact: its characters are replaced by the mask.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dask_prep.config import TokenizeConfig
from dask_prep.coref.entities import Candidate
from dask_prep.coref.names import copies_of
from dask_prep.coref.tokenizer import PortableTokenizer

IGNORE_INDEX = -100


def output_schema(with_token_type_ids: bool) -> pa.Schema:
    ids = pa.list_(pa.int32())
    small = pa.list_(pa.int8())
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("input_ids", ids),
        pa.field("attention_mask", small),
    ]
    if with_token_type_ids:
        fields.append(pa.field("token_type_ids", small))
    fields += [
        pa.field("labels", ids),
        pa.field("target", pa.string()),
        pa.field("target_ids", ids),
        pa.field("antecedent_pos", pa.int32()),
        pa.field("coref_pos", pa.int32()),
        pa.field("distance", pa.int32()),
        pa.field("mask_start", pa.int32()),
        pa.field("mask_end", pa.int32()),
        pa.field("antecedent_start", pa.int32()),
        pa.field("antecedent_end", pa.int32()),
        # Where other copies of the target in the window start (token indices): masked too,
        # their labels set, so that the antecedent is the only copy the model sees.
        pa.field("masked_copies", ids),
    ]
    return pa.schema(fields)


# One row of the output schema (`output_schema`): column name -> value.
Example = dict[str, Any]


@dataclass(frozen=True)
class Dropped:
    """Why a candidate gives no example: a reason counted in the report's `examples.dropped`."""

    reason: str


class ExampleTokenizer:
    """Turns (document text, candidate) pairs into rows of the output schema."""

    def __init__(
        self, config: TokenizeConfig, tokenizer: PortableTokenizer | None = None, batch_size: int = 64
    ) -> None:
        """`tokenizer`: the checked tokenizer from the client; None loads `config.model` here."""
        self.config = config
        self.tokenizer = tokenizer or PortableTokenizer.load(config.model)
        self.backend = self.tokenizer.backend()
        self.batch_size = batch_size
        self.with_token_type_ids = self.tokenizer.with_token_type_ids
        self.schema = output_schema(self.with_token_type_ids)
        self.mask_id = self.tokenizer.mask_token_id
        self.unk_id = self.tokenizer.unk_token_id
        self.pad_id = self.tokenizer.pad_token_id
        # The special tokens a single sequence gets around its content (e.g. [CLS] … [SEP]).
        marks = self.backend.encode("가", add_special_tokens=True).special_tokens_mask
        self.n_prefix = next(i for i, m in enumerate(marks) if not m)
        self.n_suffix = len(marks) - 1 - max(i for i, m in enumerate(marks) if not m)
        self.content_len = config.seq_len - self.n_prefix - self.n_suffix
        self._target_ids: dict[str, list[int]] = {}
        self.documents_written: set[str] = set()
        # The tokenizer's own maximum (None: it has none); rows longer than it are counted.
        self.max_length = self.tokenizer.model_max_length
        self.over_max_length = 0
        # Tokenizer coverage of the written examples: tokens (masks excluded), unknown
        # tokens, and the characters the tokenizer cannot spell that made them unknown.
        self.tokens = 0
        self.unknown_tokens = 0
        self.unknown_chars: Counter = Counter()
        self._char_is_unknown: dict[str, bool] = {}

    def target_ids(self, target: str) -> list[int]:
        ids = self._target_ids.get(target)
        if ids is None:
            ids = self.backend.encode(target, add_special_tokens=False).ids
            if len(self._target_ids) < 100_000:
                self._target_ids[target] = ids
        return ids

    def masked_text(self, text: str, c: Candidate) -> tuple[str, int]:
        """The text with the mention masked (without its other copies: `masked`)."""
        k = len(self.target_ids(c.target)) if self.config.mask_style == "whole" else 1
        return text[: c.start] + self.tokenizer.mask_token * k + text[c.end :], k

    def masked(self, text: str, c: Candidate) -> tuple[str, int, Candidate, list[int]]:
        """(masked text, k, the candidate in its positions, where each masked copy starts in it).

        Every other copy of the target that starts a word (`names.copies_of`) but the antecedent
        is masked like the mention.
        """
        k = len(self.target_ids(c.target)) if self.config.mask_style == "whole" else 1
        size, mask = len(c.target), self.tokenizer.mask_token * k
        copies = [
            at
            for at in copies_of(text, c.target, (c.antecedent_start, c.start))
            if at + size <= c.antecedent_start or at >= c.antecedent_end
            if at + size <= c.start or at >= c.end
        ]
        pieces, where, last, shift = [], [], 0, 0
        moved = {}
        for at in sorted([*copies, c.start]):
            pieces.append(text[last:at])
            moved[at] = at + shift
            pieces.append(mask)
            last = at + size
            shift += len(mask) - size
        pieces.append(text[last:])
        where = [moved[at] for at in copies]
        ante_shift = sum(len(mask) - size for at in copies if at < c.antecedent_start)
        placed = dataclasses.replace(
            c,
            antecedent_start=c.antecedent_start + ante_shift,
            antecedent_end=c.antecedent_end + ante_shift,
            start=moved[c.start],
            end=moved[c.start] + len(mask),
        )
        return "".join(pieces), k, placed, where

    def encode(self, pairs: Iterable[tuple[str, Candidate]], dropped: dict[str, int]) -> Iterator[pa.RecordBatch]:
        """Record batches of encoded examples; drops are counted in `dropped` by reason."""
        batch: list[tuple[str, Candidate]] = []
        for pair in pairs:
            batch.append(pair)
            if len(batch) >= self.batch_size:
                yield self._encode_batch(batch, dropped)
                batch = []
        if batch:
            yield self._encode_batch(batch, dropped)

    def _encode_batch(self, batch: list[tuple[str, Candidate]], dropped: dict[str, int]) -> pa.RecordBatch:
        masked = [self.masked(text, c) for text, c in batch]
        # One target's later mentions in a document mostly mask the same copies: one text, encoded once.
        texts = list(dict.fromkeys(m[0] for m in masked))
        encoded = dict(zip(texts, self.backend.encode_batch(texts, add_special_tokens=True), strict=True))
        rows = []
        for (_, c), (text, k, placed, copies) in zip(batch, masked, strict=True):
            enc = encoded[text]
            type_ids = enc.type_ids if self.with_token_type_ids else None
            row = self._example(placed, k, enc.ids, enc.offsets, type_ids, text, copies)
            if isinstance(row, Dropped):
                dropped[row.reason] = dropped.get(row.reason, 0) + 1
            else:
                # The row keeps the candidate's positions in the original text.
                row.update(antecedent_pos=c.antecedent_start, coref_pos=c.start, distance=c.distance)
                rows.append(row)
                self.documents_written.add(c.doc_id)
                self.over_max_length += self.max_length is not None and len(row["input_ids"]) > self.max_length
        # Column by column: faster than `from_pylist` over one dict per row.
        columns = {name: [row[name] for row in rows] for name in self.schema.names}
        return pa.RecordBatch.from_pydict(columns, schema=self.schema)

    def char_is_unknown(self, char: str) -> bool:
        """Whether the tokenizer spells `char` on its own as its unknown token."""
        known = self._char_is_unknown.get(char)
        if known is None:
            known = self.unk_id in self.backend.encode(char, add_special_tokens=False).ids
            self._char_is_unknown[char] = known
        return known

    def _example(
        self,
        c: Candidate,
        k: int,
        ids: list[int],
        offsets: list[tuple[int, int]],
        type_ids: list[int] | None,
        text: str | None = None,
        copies: list[int] = (),
    ) -> Example | Dropped:
        """One row, or why there is none. `text`: the masked text that was encoded;
        `copies`: where in it other copies of the target were masked."""
        pre, suf = self.n_prefix, len(ids) - self.n_suffix
        content, content_offsets = ids[pre:suf], offsets[pre:suf]
        spans = self._spans(c, k, content, content_offsets, text)
        if isinstance(spans, Dropped):
            return spans
        mask_lo, mask_hi, ante_lo, ante_hi = spans
        ends = [e for _, e in content_offsets]
        groups = [bisect.bisect_right(ends, at) for at in copies]
        lo, hi = self._window(len(content), ante_lo, mask_hi, groups, k)
        if lo is None:
            return Dropped("window")
        kept_groups = [g for g in groups if lo <= g and g + k <= hi]
        self._count_coverage(content, content_offsets, lo, hi, k * (1 + len(kept_groups)), text)
        input_ids = ids[:pre] + content[lo:hi] + ids[suf:]
        shift = pre - lo
        target_ids = self.target_ids(c.target)
        labels = [IGNORE_INDEX] * len(input_ids)
        label_values = target_ids if self.config.mask_style == "whole" else target_ids[:1]
        labels[mask_lo + shift : mask_hi + shift] = label_values
        for g in kept_groups:
            labels[g + shift : g + k + shift] = label_values
        row: Example = {
            "doc_id": c.doc_id,
            "input_ids": input_ids,
            "attention_mask": [1] * len(input_ids),
            "labels": labels,
            "target": c.target,
            "target_ids": target_ids,
            "antecedent_pos": c.antecedent_start,
            "coref_pos": c.start,
            "distance": c.distance,
            "mask_start": mask_lo + shift,
            "mask_end": mask_hi + shift,
            "antecedent_start": ante_lo + shift,
            "antecedent_end": ante_hi + shift,
            "masked_copies": [g + shift for g in kept_groups],
        }
        if type_ids is not None:
            row["token_type_ids"] = type_ids[:pre] + type_ids[pre:suf][lo:hi] + type_ids[suf:]
        if self.config.pad_to_max_length:
            self._pad(row, type_ids is not None)
        return row

    def _spans(
        self, c: Candidate, k: int, content: list[int], offsets: list[tuple[int, int]], text: str | None
    ) -> tuple[int, int, int, int] | Dropped:
        """(mask start, mask end, antecedent start, antecedent end) in the content tokens, or why not."""
        starts = [s for s, _ in offsets]
        ends = [e for _, e in offsets]
        # The first mask token: offsets are in text order; a mask token that takes the space
        # before it (lstrip, as RoBERTa's <mask>) starts before the mention, so look by end.
        mask_lo = bisect.bisect_right(ends, c.start)
        mask_hi = mask_lo + k
        if mask_hi > len(content) or any(t != self.mask_id for t in content[mask_lo:mask_hi]):
            return Dropped("mask_alignment")
        span = antecedent_span(text, offsets, starts, ends, c.antecedent_start, c.antecedent_end)
        if span is None:
            return Dropped("antecedent_alignment")
        ante_lo, ante_hi, exact = span
        # A word the vocabulary cannot spell becomes one unknown token: an antecedent or a
        # target that the model cannot see teaches nothing, so it is dropped and counted.
        if self.unk_id is not None:
            if self.unk_id in content[ante_lo:ante_hi]:
                return Dropped("unknown_antecedent")
            if self.unk_id in self.target_ids(c.target):
                return Dropped("unknown_target")
        if not exact:
            return Dropped("boundary")
        return mask_lo, mask_hi, ante_lo, ante_hi

    def _pad(self, row: Example, with_token_type_ids: bool) -> None:
        """Pad a row to `seq_len` (the old layout)."""
        pad = self.config.seq_len - len(row["input_ids"])
        row["input_ids"] = row["input_ids"] + [self.pad_id] * pad
        row["attention_mask"] = row["attention_mask"] + [0] * pad
        row["labels"] = row["labels"] + [IGNORE_INDEX] * pad
        if with_token_type_ids:
            row["token_type_ids"] = row["token_type_ids"] + [0] * pad

    def _window(self, n: int, ante_lo: int, mask_hi: int, groups: list[int], k: int) -> tuple[int | None, int]:
        """Content tokens [lo, hi) of the window: both mentions, centred, never cutting a masked copy."""
        if n <= self.content_len:
            return 0, n
        span = mask_hi - ante_lo
        if span > self.content_len:
            return None, 0
        # Centre the antecedent..mask span in the window for the most context.
        lo = ante_lo - (self.content_len - span) // 2
        lo = max(0, min(lo, n - self.content_len))
        hi = min(n, lo + self.content_len)
        for g in groups:  # a copy's masks are all in the window or none
            if g < lo < g + k:
                lo = g + k
            if g < hi < g + k:
                hi = g
        return lo, hi

    def _count_coverage(
        self, content: list[int], offsets: list[tuple[int, int]], lo: int, hi: int, k: int, text: str | None
    ) -> None:
        self.tokens += hi - lo - k
        if self.unk_id is None or not (unknown := content[lo:hi].count(self.unk_id)):
            return
        self.unknown_tokens += unknown
        if text is not None:
            for i in range(lo, hi):
                if content[i] == self.unk_id:
                    start, end = offsets[i]
                    self.unknown_chars.update(ch for ch in text[start:end] if self.char_is_unknown(ch))

    def coverage(self, top: int = 100) -> dict[str, Any]:
        """Counts for the report: tokens, unknown tokens, the most frequent unknown characters."""
        return {
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "unknown_chars": dict(self.unknown_chars.most_common(top)),
        }


def _trimmed(text: str | None, start: int, end: int) -> tuple[int, int]:
    """A token's characters without the whitespace its offsets include (▁ and Ġ pieces)."""
    if text is not None:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
    return start, end


def antecedent_span(
    text: str | None,
    offsets: list[tuple[int, int]],
    starts: list[int],
    ends: list[int],
    first: int,
    last: int,
) -> tuple[int, int, bool] | None:
    """(lo, hi, exact): the tokens overlapping characters [first, last), end exclusive.

    `exact` is False when one of them also holds characters outside the span (besides
    whitespace). None when no token overlaps it. `starts`/`ends` are the offsets' columns.
    """
    lo = bisect.bisect_right(ends, first)
    hi = bisect.bisect_left(starts, last)
    inside = []
    for i in range(lo, hi):
        s, e = _trimmed(text, *offsets[i])
        if s < e and s < last and e > first:
            inside.append((i, s, e))
    if not inside:
        return None
    exact = all(first <= s and e <= last for _, s, e in inside)
    return inside[0][0], inside[-1][0] + 1, exact
