"""datatrove's Korean words and the counts its FineWeb-2 rules take of them.

Words are what datatrove's Korean tokenizer (`KiwiTokenizer.word_tokenize`) returns: the
text under each Kiwi token span, stripped, empty ones dropped. datatrove first removes
runs of 20 or more digits and commas (Kiwi once struggled with huge numbers), analyses
that cleaned text, and then slices the *original* text with the cleaned-text offsets.
Here the one Kiwi analysis of the original text, shared with the entity step, is turned
into the same words: tokens inside a removed run are dropped and the offsets of the
others are shifted as the removal shifts them (`datatrove_words`). Only documents with
such a run (8 of 13,561 in the shared corpus) can differ, where Kiwi would segment the
text around the run differently once the run is gone.

The word rules (dask_prep/analysis/filters/fineweb2.py) share one view of the words per document
(`word_view`), built from the analysis once.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from itertools import accumulate, compress
from operator import ne
from typing import Any

from dask_prep.document import Document

# ---- datatrove's character classes (datatrove/utils/text.py, Apache-2.0) --------------

PUNCTUATION = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»" + "".join(
    chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b)
)
TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965"
    "\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944"
    "\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c"
    "\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877"
    "\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e"
    "\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86"
    "\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238"
    "\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9"
    "\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2"
    "\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c\U0001173d"
    "\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42"
    "\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38"
    "\U00016b44\U00016e98\U0001bc9f\U0001da88"
)
PUNCTUATION_SET = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION

_KIWI_CLEAN = re.compile("[0-9,]{20,}")  # what datatrove's KiwiTokenizer.preprocess removes


# ---- words -----------------------------------------------------------------------------


def datatrove_words(text: str, tokens: Any) -> list[str]:
    """datatrove's Korean words of `text`, from a Kiwi analysis of the original text."""
    removed = [m.span() for m in _KIWI_CLEAN.finditer(text)]
    words = []
    if not removed:
        for t in tokens:
            word = text[t.start : t.start + t.len].strip()
            if word:
                words.append(word)
        return words
    for start, end in _cleaned_spans(((t.start, t.start + t.len) for t in tokens), removed):
        word = text[start:end].strip()
        if word:
            words.append(word)
    return words


def _cleaned_spans(spans: Any, removed: list[tuple[int, int]]) -> Any:
    """Map spans of the original text to the cleaned text datatrove gives Kiwi.

    A position inside a removed run maps to where the run was; a span that falls wholly
    inside a run disappears, as its token would not exist in the cleaned text.
    """

    def cleaned(position: int) -> int:
        shift = 0
        for start, end in removed:
            if position <= start:
                break
            shift += min(position, end) - start
        return position - shift

    for start, end in spans:
        new_start, new_end = cleaned(start), cleaned(end)
        if new_end > new_start:
            yield new_start, new_end


class NGramText:
    """Words joined without and with spaces, and where each word starts in each.

    An n-gram is then one slice of a string instead of a list slice and a join (the same
    strings as datatrove's), and whole rows of n-grams are cut in C with `map`.
    """

    def __init__(self, words: list[str]) -> None:
        self.count = len(words)
        self.joined = "".join(words)
        self.spaced = " ".join(words)
        self.offsets = list(accumulate(map(len, words), initial=0))  # word i starts at offsets[i]
        self.spaced_starts = [o + i for i, o in enumerate(self.offsets)]  # one space after each word
        self.spaced_ends = [s - 1 for s in self.spaced_starts]  # where the word before i ends

    def joined_grams(self, n: int) -> Iterator[str]:
        last = self.count - n + 1
        if last <= 0:
            return iter(())
        return map(self.joined.__getitem__, map(slice, self.offsets[:last], self.offsets[n:]))

    def spaced_grams(self, n: int) -> Iterator[str]:
        last = self.count - n + 1
        if last <= 0:
            return iter(())
        return map(self.spaced.__getitem__, map(slice, self.spaced_starts[:last], self.spaced_ends[n:]))


class WordView:
    """The words of one document and what several rules derive from them, computed once."""

    def __init__(self, text: str, tokens: Any) -> None:
        self.text = text
        self.tokens = tokens
        self.words = datatrove_words(text, tokens)
        self._non_symbol: list[str] | None = None
        self._ngrams: NGramText | None = None

    @property
    def non_symbol_words(self) -> list[str]:
        """Words with a character outside datatrove's punctuation set."""
        if self._non_symbol is None:
            self._non_symbol = [w for w in self.words if not PUNCTUATION_SET.issuperset(w)]
        return self._non_symbol

    @property
    def ngrams(self) -> NGramText:
        if self._ngrams is None:
            self._ngrams = NGramText(self.words)
        return self._ngrams


_local = threading.local()  # one cached view per thread: a worker may run several tasks


def word_view(doc: Document) -> WordView:
    """The words of `doc` from its Kiwi analysis (`doc.tokens`), shared by all word rules."""
    tokens = doc.tokens
    if tokens is None:
        raise ValueError(
            f"document {doc.doc_id}: this rule needs the Kiwi analysis (doc.tokens); "
            "judge documents with FilterChain.run"
        )
    view = getattr(_local, "view", None)
    if view is None or view.tokens is not tokens or view.text is not doc.text:
        view = WordView(doc.text, tokens)
        _local.view = view
    return view


# ---- datatrove's counting helpers ------------------------------------------------------


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(repeated elements, characters in them) after each element's first occurrence."""
    seen: set[str] = set()
    elements = chars = 0
    for item in items:
        if item in seen:
            elements += 1
            chars += len(item)
        else:
            seen.add(item)
    return elements, chars


def top_ngram_chars(ngrams: NGramText, n: int) -> int:
    """Characters of the most frequent space-joined n-gram times its count (0 if none).

    Ties go to the n-gram seen first, as with datatrove's `Counter.most_common(1)`.
    """
    if ngrams.count < n:
        return 0
    gram, count = Counter(ngrams.spaced_grams(n)).most_common(1)[0]
    return len(gram) * count


def duplicated_ngram_chars(ngrams: NGramText, n: int) -> int:
    """Characters in repeated n-grams (joined without spaces), as datatrove's walk counts them.

    datatrove walks the n-grams left to right; an n-gram seen before at a visited position
    counts and makes the walk jump n positions, skipping the n-grams in between. The same
    walk is done here only where it matters: the n-grams, their first positions and the
    positions that repeat an earlier n-gram are found in C, then only those positions are
    walked in Python.
    """
    last = ngrams.count - n + 1
    if last <= 1:
        return 0
    grams = list(ngrams.joined_grams(n))
    first = dict(zip(reversed(grams), range(last - 1, -1, -1), strict=True))  # the earliest position wins
    positions = range(last)
    repeats = list(compress(positions, map(ne, map(first.__getitem__, grams), positions)))
    hits: list[int] = []  # positions where the walk counted a repeat; each skips the next n - 1

    def visited(position: int) -> bool:
        i = bisect_right(hits, position) - 1
        return i < 0 or hits[i] == position or position >= hits[i] + n

    seen_at_visit: dict[str, bool] = {}  # n-gram -> the walk has already visited a copy of it
    repeated = 0
    for position in repeats:
        gram = grams[position]
        if gram not in seen_at_visit:
            seen_at_visit[gram] = visited(first[gram])
        if not visited(position):
            continue
        if seen_at_visit[gram]:
            repeated += len(gram)
            hits.append(position)
        else:
            seen_at_visit[gram] = True
    return repeated
