"""Name phrases on Kiwi's tags (issue 33): the words and runs of tokens `coref.names` reads.

A token is what `coref.entities` reads of one (`form`, `tag`, `start`, `len`); a word is what
lies between two whitespace characters. Each function here is a pure function of the text
and its tokens (and of `entities.name_heads`), so stored tokens give the same answers.
"""

from __future__ import annotations

from typing import Any

from dask_prep.coref.entities import may_follow_head, starts_word

# Tags of a following word that make the name before it part of a longer name.
CONTINUING_TAGS = frozenset({"SN", "NR", "SL", "SH"})
PROPER = "NNP"
NOUNS = frozenset({"NNP", "NNG"})
# What a bare noun word (no particle) is made of, and how many may come between a name and a name head.
BARE_NOUN_TAGS = frozenset({"NNP", "NNG", "NNB", "XSN"})
BARE_WORDS_TO_HEAD = 2


def token_runs(tokens: list[Any], tags: frozenset[str]) -> list[tuple[int, int, int, int]]:
    """(first token, next token, start, end) of each run of `tags` tokens written without a gap."""
    runs, i = [], 0
    while i < len(tokens):
        if tokens[i].tag not in tags:
            i += 1
            continue
        first, start, end = i, tokens[i].start, tokens[i].start + tokens[i].len
        i += 1
        while i < len(tokens) and tokens[i].tag in tags and tokens[i].start == end:
            end = tokens[i].start + tokens[i].len
            i += 1
        runs.append((first, i, start, end))
    return runs


def word_end(text: str, tokens: list[Any], nxt: int, end: int) -> str:
    """'open' (the word ends at `end`), 'head' (a particle, ending, … follows) or 'inside' (more word follows)."""
    follower = tokens[nxt] if nxt < len(tokens) else None
    if follower is not None and follower.start <= end:
        return "head" if may_follow_head(follower.tag) else "inside"
    if end < len(text) and text[end].isalnum():  # text Kiwi gave no morpheme for
        return "inside"
    return "open"


def continuation(text: str, tokens: list[Any], nxt: int, end: int, heads: frozenset[str]) -> tuple[int, int] | None:
    """(next token, end) of the phrase with the word after one space added when it continues the name.

    It continues the name when it starts with a proper noun, numerals, Latin or Hanja
    (`닌텐도 64`, `나고야 TV`) or with a noun of `entities.name_heads` (`러일 전쟁`), and only a
    particle, ending, … follows that part in the word (it is left out of the phrase).
    Returns (-1, -1) when the word starts so but goes on with more (`오사카 대학교병원`).
    """
    word = next_word(text, tokens, nxt, end)
    if word is None:
        return None
    i, j = word
    lead = tokens[i].tag if tokens[i].tag in CONTINUING_TAGS or tokens[i].tag == PROPER else None
    k = i + 1
    while k < j and tokens[k].start == tokens[k - 1].start + tokens[k - 1].len:
        if lead is None and tokens[k].tag not in NOUNS or lead is not None and tokens[k].tag != tokens[i].tag:
            break
        k += 1
    stop = tokens[k - 1].start + tokens[k - 1].len
    if lead is None and not (tokens[i].tag in NOUNS and text[tokens[i].start : stop] in heads):
        if tokens[i].tag not in NOUNS or text[tokens[i].start : tokens[i].start + tokens[i].len] not in heads:
            return None
        return -1, -1  # a name head glued to more nouns
    if word_end(text, tokens, k, stop) == "inside":
        return -1, -1
    return k, stop


def previous_word_is_code(text: str, tokens: list[Any], first: int, start: int) -> bool:
    """Whether the name follows one space after a word ending in Latin letters (`TV 타워`).

    (Digits are not: `2008 베이징` is a year, and `1만 명` a count.)"""
    if first == 0 or start < 2 or text[start - 1] != " ":
        return False
    before = tokens[first - 1]
    return before.start + before.len == start - 1 and before.tag == "SL"


def word_tokens(text: str, tokens: list[Any], i: int) -> tuple[int, int]:
    """Token indexes [i, j) of the word (up to the next whitespace) whose first token is `i`."""
    space = next((k for k in range(tokens[i].start, len(text)) if text[k].isspace()), len(text))
    j = i
    while j < len(tokens) and tokens[j].start < space:
        j += 1
    return i, j


def next_word(text: str, tokens: list[Any], nxt: int, end: int) -> tuple[int, int] | None:
    """Tokens of the word after one space at `end` (the phrase's end), or None."""
    if end < len(text) and text[end] == " " and nxt < len(tokens) and tokens[nxt].start == end + 1:
        return word_tokens(text, tokens, nxt)
    return None


def nouns_to_a_head(text: str, tokens: list[Any], nxt: int, end: int, heads: frozenset[str]) -> tuple[int, int] | None:
    """(next token, end) of the phrase through bare noun words up to a name head (`아시아 경기 연맹`).

    A name, then at most `BARE_WORDS_TO_HEAD` words of nouns without a particle, then a word whose
    nouns are a name head and end the noun phrase, is one longer name (`한일 병합 조약이`,
    `박헌영 리승엽 간첩 사건에`); a head followed by another noun is a common noun (`미국 국내 대학 순위`).
    """
    for _ in range(BARE_WORDS_TO_HEAD):
        word = next_word(text, tokens, nxt, end)
        if word is None or any(t.tag not in BARE_NOUN_TAGS for t in tokens[word[0] : word[1]]):
            return None
        if tokens[word[0]].tag not in NOUNS or word_end(text, tokens, word[1], end_of(tokens[word[1] - 1])) != "open":
            return None
        nxt, end = word[1], end_of(tokens[word[1] - 1])
        more = continuation(text, tokens, nxt, end, heads)
        if more is not None and more[0] >= 0 and text[end + 1 : more[1]] in heads:
            after = next_word(text, tokens, *more)
            # The head ends the noun phrase (`간첩 사건에`), not modifies another noun (`국내 대학 순위`).
            return more if after is None or tokens[after[0]].tag not in NOUNS else None
    return None


def end_of(token: Any) -> int:
    return token.start + token.len


def compound_name_before(text: str, tokens: list[Any], first: int, start: int) -> int | None:
    """Where the word before starts when it is a bare compound of a name and nouns (`조선총독부 중추원`).

    Such a word (a proper noun, then common nouns, no particle), one space before the name,
    names what the name belongs to: the two words are one longer name.
    """
    if first == 0 or start < 2 or text[start - 1] != " " or end_of(tokens[first - 1]) != start - 1:
        return None
    j = first - 1
    while j > 0 and end_of(tokens[j - 1]) == tokens[j].start:
        j -= 1
    word = tokens[j:first]
    if not starts_word(text, word[0].start) or word[0].tag != PROPER or word[-1].tag != "NNG":
        return None
    return word[0].start if all(t.tag in BARE_NOUN_TAGS for t in word) else None


TITLE_BRACKETS = {"《": "》", "〈": "〉", "「": "」", "『": "』"}
QUOTES = {"'": "'", '"': '"', "‘": "’", "“": "”"}
TITLE_CHARS = 60  # the longest title or quotation a name is looked for in


def quotation_around(text: str, start: int, end: int) -> tuple[int, int] | None:
    """[open, close) of the title bracket around the name on its line, or of quotation marks that touch it.

    (`《이스 온라인》`, `'아캄 하우스'`): a quotation counts only where the name opens or closes it,
    so that a name inside a quoted sentence is still a mention.
    """
    lo = max(text.rfind("\n", 0, start) + 1, start - TITLE_CHARS)
    for k in range(start - 1, lo - 1, -1):
        if text[k] in TITLE_BRACKETS.values():
            break
        if text[k] in TITLE_BRACKETS:
            return _closed(text, k, TITLE_BRACKETS[text[k]], end)
    if start > 0 and text[start - 1] in QUOTES:
        return _closed(text, start - 1, QUOTES[text[start - 1]], end)
    openers = [o for o, c in QUOTES.items() if c == text[end : end + 1]]
    opening = max((text.rfind(o, lo, start) for o in openers), default=-1)
    return (opening, end) if opening >= 0 else None


def _closed(text: str, opening: int, close: str, end: int) -> tuple[int, int] | None:
    shut = text.find(close, end, end + TITLE_CHARS)
    return (opening, shut) if shut >= 0 and "\n" not in text[end:shut] else None


def inside_longer_title(text: str, start: int, end: int) -> bool:
    """Whether the name is in a title bracket or a quotation that holds more than the name (`《이스 온라인》`)."""
    quoted = quotation_around(text, start, end)
    return quoted is not None and text[quoted[0] + 1 : quoted[1]].strip() != text[start:end]


def runs_end_of_first_word(text: str, start: int, end: int) -> int:
    space = text.find(" ", start, end)
    return end if space < 0 else space
