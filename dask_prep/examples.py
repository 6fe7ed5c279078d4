"""Entities and examples: repeated proper nouns become masked-mention candidates.

For each entity mentioned at least twice, the first mention is the antecedent; later
mentions (at most `max_masked_mentions`) each give one candidate example when they lie
within [min_distance, max_distance] characters of it.

The global cap is order-free: an entity over the cap keeps the candidates with the
lowest stable hash of (doc id, entity, mention start). Partitions summarise their
hashes (`summarize_entities`), summaries merge in any order (`merge_summaries`), and
the merged summary gives one hash threshold per over-cap entity (`cap_thresholds`).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dask_prep.config import EntityConfig

Span = tuple[int, int]


def find_repeated_entities(tokens: Iterable[Any], config: EntityConfig) -> dict[str, list[Span]]:
    """Proper nouns (NNP) of at least `min_chars`, grouped by form, with enough mentions.

    Returns {entity: [(start, end), ...]} with mentions in text order.
    """
    stop = set(config.stop_entities)
    mentions: dict[str, list[Span]] = defaultdict(list)
    for token in tokens:
        if token.tag == "NNP" and len(token.form) >= config.min_chars and token.form not in stop:
            mentions[token.form].append((token.start, token.start + token.len))
    return {entity: sorted(spans) for entity, spans in mentions.items() if len(spans) >= config.min_mentions}


@dataclass(frozen=True)
class Candidate:
    doc_id: str
    target: str
    antecedent_start: int
    antecedent_end: int
    start: int  # the masked mention
    end: int
    key: int  # stable hash that decides which candidates survive the cap

    @property
    def distance(self) -> int:
        return self.start - self.antecedent_start

    def as_record(self) -> dict[str, Any]:
        """The fields stored in a stage-1 part (the doc id is stored once per document)."""
        return {
            "target": self.target,
            "antecedent_start": self.antecedent_start,
            "antecedent_end": self.antecedent_end,
            "start": self.start,
            "end": self.end,
            "key": self.key,
        }


def candidate_key(doc_id: str, target: str, start: int) -> int:
    digest = hashlib.blake2b(f"{doc_id}\x1f{target}\x1f{start}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits a signed int64 column


def build_candidates(doc_id: str, entities: dict[str, list[Span]], config: EntityConfig) -> list[Candidate]:
    """One candidate per qualifying later mention, ordered by mention position."""
    candidates = []
    for target, spans in entities.items():
        antecedent = spans[0]
        for start, end in spans[1 : 1 + config.max_masked_mentions]:
            if config.min_distance <= start - antecedent[0] <= config.max_distance:
                candidates.append(
                    Candidate(
                        doc_id,
                        target,
                        antecedent[0],
                        antecedent[1],
                        start,
                        end,
                        candidate_key(doc_id, target, start),
                    )
                )
    candidates.sort(key=lambda c: (c.start, c.target))
    return candidates


# ---- the global cap ------------------------------------------------------------------
# A summary maps entity -> (number of candidates, the `cap` smallest keys, ascending).
Summary = dict[str, tuple[int, list[int]]]


def summarize_entities(keys: Iterable[tuple[str, int]], cap: int | None) -> Summary:
    grouped: dict[str, list[int]] = defaultdict(list)
    for target, key in keys:
        grouped[target].append(key)
    return {t: (len(ks), _smallest(ks, cap)) for t, ks in grouped.items()}


def merge_summaries(summaries: Iterable[Summary], cap: int | None) -> Summary:
    merged: dict[str, tuple[int, list[int]]] = {}
    for summary in summaries:
        for target, (count, keys) in summary.items():
            if target in merged:
                old_count, old_keys = merged[target]
                merged[target] = (old_count + count, _smallest(heapq.merge(old_keys, keys), cap))
            else:
                merged[target] = (count, keys)
    return merged


def _smallest(keys: Iterable[int], cap: int | None) -> list[int]:
    # Without a cap no keys are needed: only the counts are.
    return heapq.nsmallest(cap, keys) if cap is not None else []


def cap_thresholds(summary: Summary, cap: int | None) -> dict[str, int]:
    """For each entity over the cap: the largest key it keeps."""
    if cap is None:
        return {}
    return {target: keys[cap - 1] for target, (count, keys) in summary.items() if count > cap}


def passes_cap(candidate_target: str, key: int, thresholds: dict[str, int]) -> bool:
    limit = thresholds.get(candidate_target)
    return limit is None or key <= limit
