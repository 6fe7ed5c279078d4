"""Whole names (issue 33): which spans of a document are mentions, and how proper each surface is.

Everything here is a pure function of (text, Kiwi tokens, EntityConfig), so a finished
analysis's stored tokens give the same mentions and counts again without Kiwi.

A **name phrase** is a run of proper-noun words: each word starts with a run of NNP
morphemes written without a gap, words are separated by one space, and every word but
the last is nothing but its NNPs (`퀸스 파크 레인저스`, `사비 에르난데스`). It takes in the
longer name it is part of (`coref.phrases`): a numeral, Latin letters, Hanja, a proper noun
or a noun of `entities.name_heads` as the next word (`닌텐도 64`, `나고야 TV 타워`,
`러일 전쟁`); up to `BARE_WORDS_TO_HEAD` bare noun words and then such a head that ends the
noun phrase (`한일 병합 조약이`, not `미국 국내 대학 순위`); a bare compound of a name and
nouns as the word before (`조선총독부 중추원`). The phrase is a mention when it heads its
last word (only what `may_follow_head` allows follows it there), is not preceded by a word
of Latin letters (`TV 타워` alone) and is not inside a longer title or quotation
(`《이스 온라인》`, `'아캄 하우스'`). A prefix 주(駐) glued to a name Kiwi tags as one NNP
(`주대한민국`) makes no mention, and a particle Kiwi glued to a name (`대한민국의` as one
NNP, but not `황해도에`: a particle follows) is left out of it: targets are names only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from dask_prep.config import EntityConfig
from dask_prep.coref.entities import Span, find_example_entities, group_surface_mentions, starts_word
from dask_prep.coref.phrases import (
    NOUNS,
    PROPER,
    compound_name_before,
    continuation,
    inside_longer_title,
    nouns_to_a_head,
    previous_word_is_code,
    runs_end_of_first_word,
    token_runs,
    word_end,
)

# Particles Kiwi sometimes leaves inside an NNP (`대한민국의`): cut off when the rest is a name of the document.
GLUED_PARTICLES = frozenset("의은는이가을를에와과도로")


def _names_in(tokens: list[Any]) -> set[str]:
    return {t.form for t in tokens if t.tag == PROPER}


def name_mentions(text: str, tokens: Iterable[Any], config: EntityConfig) -> list[Span]:
    """Character spans of the whole name phrases of `text` that are mentions (module docstring)."""
    toks = [t for t in tokens if t.len > 0]
    heads = frozenset(config.name_heads)
    runs = token_runs(toks, frozenset({PROPER}))
    names = _names_in(toks)
    mentions: list[Span] = []
    r = 0
    while r < len(runs):
        first, nxt, start, end = runs[r]
        ending = word_end(text, toks, nxt, end)
        r += 1
        # Further words of the phrase: one space, then a run that starts its word.
        while ending == "open" and r < len(runs) and runs[r][2] == end + 1 and text[end] == " ":
            _, nxt, _, end = runs[r]
            ending = word_end(text, toks, nxt, end)
            r += 1
        while ending == "open" and (
            (more := continuation(text, toks, nxt, end, heads)) is not None
            or (more := nouns_to_a_head(text, toks, nxt, end, heads)) is not None
        ):
            nxt, end = more
            if nxt < 0:
                break
            ending = word_end(text, toks, nxt, end)
            while r < len(runs) and runs[r][2] < end:
                r += 1
        if nxt < 0 or ending == "inside" or not starts_word(text, start):
            continue
        if previous_word_is_code(text, toks, first, start):
            continue
        before = compound_name_before(text, toks, first, start)
        start = start if before is None else before
        if inside_longer_title(text, start, end):
            continue
        first_word = text[start : runs_end_of_first_word(text, start, end)]
        if first_word[0] == "주" and len(first_word) >= 3 and first_word[1:] in names:
            continue  # 주(駐) + a name of this document: `주대한민국`
        last_word = text[start:end].rsplit(" ", 1)[-1]
        if last_word[-1] in GLUED_PARTICLES and len(last_word) >= 3 and last_word[:-1] in names:
            # `대한민국의`, `라쿠텐 이글스의` with one NNP: the particle is not the name. A particle after it in the
            # word says the last syllable is the name's own (`황해도에`: 도 is no particle there).
            if not (ending == "head" and toks[nxt].tag.startswith("J")):
                end -= 1
        mentions.append((start, end))
    return mentions


def example_entities(text: str, tokens: Iterable[Any], config: EntityConfig) -> dict[str, list[Span]]:
    """{target: spans in text order} whose mentions become examples, by `entities.mentions`.

    `names` (the default): whole name phrases (`name_mentions`) grouped by what the text
    spells; `whole_word` and `nnp`: the rules before issue 33 (`entities.find_example_entities`).
    """
    config = _with_stoplist(config)
    if config.mentions != "names":
        return find_example_entities(text, tokens, config)
    return group_surface_mentions(text, name_mentions(text, tokens, config), config)


# ---- how proper a surface is -----------------------------------------------------------
# {surface: (occurrences tagged a proper noun, whole-word noun occurrences)}
ProperCounts = dict[str, tuple[int, int]]


def proper_counts(text: str, tokens: Iterable[Any], config: EntityConfig) -> ProperCounts:
    """Per surface: how often a whole word's noun head spells it, and how often as proper nouns only.

    A word's noun head is its leading run of nouns (NNP, NNG) when it starts the word and
    only a particle, ending, … follows it there; it counts as proper when every morpheme of
    the run is NNP (`클래스` as NNG counts as not proper; `해치백` split into nouns too).
    Only surfaces that could be targets (`min_chars`) are counted.
    """
    toks = [t for t in tokens if t.len > 0]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for first, nxt, start, end in token_runs(toks, NOUNS):
        if end - start < config.min_chars or not starts_word(text, start):
            continue
        if word_end(text, toks, nxt, end) == "inside":
            continue
        surface = text[start:end]
        entry = counts[surface]
        entry[1] += 1
        entry[0] += all(t.tag == PROPER for t in toks[first:nxt])
    return {s: (p, n) for s, (p, n) in counts.items()}


def merge_proper_counts(parts: Iterable[ProperCounts]) -> ProperCounts:
    merged: dict[str, tuple[int, int]] = {}
    for part in parts:
        for surface, (proper, total) in part.items():
            old = merged.get(surface, (0, 0))
            merged[surface] = (old[0] + proper, old[1] + total)
    return merged


def not_proper_targets(targets: Iterable[str], counts: ProperCounts, min_share: float) -> set[str]:
    """The targets tagged a proper noun at less than `min_share` of their whole-word occurrences.

    A multi-word target (a phrase of proper-noun words) is kept: its words are counted one by
    one, and its last is often a common head (`다이쇼 천황`, `S7 항공`). A target never seen as
    a whole word's noun head is kept too.
    """
    dropped = set()
    for target in targets:
        if " " in target:
            continue
        proper, total = counts.get(target, (0, 0))
        if total and proper / total < min_share:
            dropped.add(target)
    return dropped


def _with_stoplist(config: EntityConfig) -> EntityConfig:
    if not config.stoplist_file:
        return config
    return dataclasses.replace(
        config, stop_entities=list(config.stop_entities) + sorted(load_stoplist(config.stoplist_file))
    )


@functools.lru_cache(maxsize=4)
def load_stoplist(path: str) -> frozenset[str]:
    """The targets listed in a stoplist file: one a line, `#` starts a comment."""
    from dask_prep.io import storage

    with storage.open_read(path) as handle:
        lines = handle.read().decode("utf-8").splitlines()
    return frozenset(line.split("#", 1)[0].strip() for line in lines) - {""}


# ---- echoes and copies -----------------------------------------------------------------
TITLE_LINE_CHARS = 80  # a line this short without a sentence mark at its end is a title
ECHO_CHARS = 30  # a mention this close after the title line's end echoes it


def is_title_echo(text: str, antecedent_start: int, antecedent_end: int, start: int) -> bool:
    """Whether the antecedent is in a title line and the mention opens the text after it.

    (`서병주` as the title, then `서병주 ( 1885년 ) …`): the mask is answered by the line
    above, not resolved. Such mentions give no example (counted as `echo`).
    """
    line_start = text.rfind("\n", 0, antecedent_start) + 1
    line_end = text.find("\n", antecedent_end)
    if line_end < 0 or line_end >= start or line_end - line_start > TITLE_LINE_CHARS:
        return False
    if text[line_start:line_end].rstrip().endswith((".", "?", "!")):
        return False
    return start - line_end <= ECHO_CHARS and "\n" not in text[line_end + 1 : start]


def copies_of(text: str, target: str, keep: Iterable[int]) -> list[int]:
    """Where else the text spells `target` at the start of a word (every start but those in `keep`).

    These are masked too in an example (`coref.tokenization`), so that the only copy of the
    target the model sees is its antecedent.
    """
    skip, found, at = set(keep), [], text.find(target)
    while at >= 0:
        if at not in skip and starts_word(text, at):
            found.append(at)
        at = text.find(target, at + len(target))
    return found


# The cap threshold that marks a target below `entities.min_proper_share`: no key is below it.
NOT_PROPER = -1


def thresholds_with_not_proper(thresholds: dict[str, int], not_proper: Iterable[str]) -> dict[str, int]:
    """The cap's thresholds with every not-proper target marked `NOT_PROPER` (dropped before the cap)."""
    return {**thresholds, **dict.fromkeys(not_proper, NOT_PROPER)}


def without_echoes(text: str, entities: dict[str, list[Span]]) -> tuple[dict[str, list[Span]], int]:
    """The entities without their mentions that echo a title line (`is_title_echo`), and how many.

    An echo gives no example and takes no place among `max_masked_mentions`; it is still
    masked in the others' examples as a copy of the target.
    """
    kept, echoes = {}, 0
    for target, spans in entities.items():
        first = spans[0]
        rest = [s for s in spans[1:] if not is_title_echo(text, first[0], first[1], s[0])]
        echoes += len(spans) - 1 - len(rest)
        kept[target] = [first, *rest]
    return kept, echoes
