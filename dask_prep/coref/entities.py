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

    Returns {entity: [(start, end), ...]} with mentions in text order. This is seed-v2's
    `no_repeated_entity` rule (which documents are kept); `find_example_entities` decides
    which mentions become examples.
    """
    stop = set(config.stop_entities)
    mentions: dict[str, list[Span]] = defaultdict(list)
    for token in tokens:
        if token.tag == "NNP" and len(token.form) >= config.min_chars and token.form not in stop:
            mentions[token.form].append((token.start, token.start + token.len))
    return {entity: sorted(spans) for entity, spans in mentions.items() if len(spans) >= config.min_mentions}


# ---- mentions that become examples ----------------------------------------------------
MENTION_RULES = ("whole_word", "nnp")

# What may follow a proper noun inside its word (eojeol) with the noun still the head of
# that word: particles (J*), endings (E*), the copula (VCP, VCN), suffixes that make a
# verb or adjective of the noun (XSV, XSA, XSM) and punctuation. Anything else - another
# noun (NNG, NNP, NNB), a numeral (NR, SN), a pronoun (NP), Latin or Hanja (SL, SH), a
# noun suffix (XSN), a prefix, root or determiner starting a new noun (XPN, XR, MM), a
# verb or adjective stem (VV, VA, VX: on NNPs these are mostly mis-split longer names),
# an adverb, unknown text, web tokens, the compound's sai-siot (Z_SIOT) - makes the NNP
# the first part of a longer word, which may name something else (대구 in 대구부).
HEAD_FOLLOWER_PREFIXES = ("J", "E", "VCP", "VCN", "XSV", "XSA", "XSM")
PUNCTUATION_TAGS = frozenset({"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB"})


def may_follow_head(tag: str) -> bool:
    """Whether a morpheme with Kiwi tag `tag` may follow a proper noun that heads its word."""
    return tag in PUNCTUATION_TAGS or tag.startswith(HEAD_FOLLOWER_PREFIXES)


def starts_word(text: str, start: int) -> bool:
    # An eojeol starts at the start of the text or after whitespace or punctuation.
    return start == 0 or not text[start - 1].isalnum()


def whole_word_mentions(text: str, tokens: Iterable[Any]) -> list[Span]:
    """Character spans of the proper nouns that are whole words' nominal heads.

    A mention is an NNP, or a run of NNPs that Kiwi writes without a gap (존시나 as
    존/NNP 시나/NNP), that starts a word and is followed in that word only by what
    `may_follow_head` allows. Spans are positions in `text`; the text decides what they spell.
    """
    toks = [t for t in tokens if t.len > 0]
    mentions: list[Span] = []
    i = 0
    while i < len(toks):
        if toks[i].tag != "NNP":
            i += 1
            continue
        start, end = toks[i].start, toks[i].start + toks[i].len
        i += 1
        while i < len(toks) and toks[i].tag == "NNP" and toks[i].start == end:
            end = toks[i].start + toks[i].len
            i += 1
        if not starts_word(text, start):
            continue
        follower = toks[i] if i < len(toks) else None
        if follower is not None and follower.start <= end:  # the next morpheme is in this word
            if not may_follow_head(follower.tag):
                continue
        elif end < len(text) and text[end].isalnum():  # text Kiwi gave no morpheme for
            continue
        mentions.append((start, end))
    return mentions


def group_surface_mentions(text: str, spans: Iterable[Span], config: EntityConfig) -> dict[str, list[Span]]:
    """{surface string: spans in text order} for surfaces with enough mentions."""
    stop = set(config.stop_entities)
    grouped: dict[str, list[Span]] = defaultdict(list)
    for start, end in spans:
        surface = text[start:end]
        if len(surface) >= config.min_chars and surface not in stop and "\n" not in surface:
            grouped[surface].append((start, end))
    return {s: sorted(v) for s, v in grouped.items() if len(v) >= config.min_mentions}


def find_example_entities(text: str, tokens: Iterable[Any], config: EntityConfig) -> dict[str, list[Span]]:
    """The entities whose mentions become examples, keyed by what the text spells.

    `mentions: whole_word`: `whole_word_mentions`, grouped by surface string (`names`, the
    default, is `dask_prep.coref.names.example_entities`).
    `mentions: nnp`: every NNP token, grouped by Kiwi's form (the behaviour before).
    """
    if config.mentions == "nnp":
        return find_repeated_entities(tokens, config)
    return group_surface_mentions(text, whole_word_mentions(text, tokens), config)


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
