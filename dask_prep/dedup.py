"""Exact deduplication before Kiwi: the key is a hash of the NFKC, whitespace-collapsed text.

Across all partitions and files, the copy with the smallest document id is kept and the
others are rejected as `duplicate`. The global step (which copies are duplicates) runs
on Dask in `graph.py`; here are the plain per-document pieces.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

from dask_prep.reading import Document


def fingerprint(text: str) -> int:
    """64-bit key of a text's normalised form (fits a signed int64 column)."""
    if not unicodedata.is_normalized("NFKC", text):  # the fast check spares most texts a copy
        text = unicodedata.normalize("NFKC", text)
    digest = hashlib.blake2b(collapse_whitespace(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def collapse_whitespace(text: str) -> str:
    """`" ".join(text.split())`: every Unicode whitespace run becomes one space, none at the ends.

    Splitting a long text makes one string per word; most texts have no whitespace but
    spaces, newlines and tabs, and are done with a few whole-string passes instead (half
    the time on the shared corpus). After the replacements, a printable text has no
    whitespace but the space (the only whitespace character that is printable; the tests
    check every code point).
    """
    flat = text.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    if not flat.isprintable():
        return " ".join(text.split())
    while "  " in flat:
        flat = flat.replace("  ", " ")
    return flat.strip(" ")


def fingerprints(docs: Iterable[Document]) -> list[tuple[int, str]]:
    """(fingerprint, doc id) of every well-formed document."""
    return [(fingerprint(d.text), d.doc_id) for d in docs if d.rejected_by is None]


def mark_duplicates(docs: Iterable[Document], keep: dict[int, str]) -> None:
    """Reject every document whose fingerprint has another copy chosen to keep.

    `keep` maps the fingerprint of each duplicated text to the doc id that survives.
    """
    if not keep:
        return
    for doc in docs:
        if doc.rejected_by is None:
            survivor = keep.get(fingerprint(doc.text))
            if survivor is not None and survivor != doc.doc_id:
                doc.rejected_by = "duplicate"


def first_of_repeated(group: tuple[int, list[tuple[int, str]]]) -> tuple[int, str] | None:
    """(fingerprint, smallest doc id) of a text with several copies; None for a unique text."""
    key, pairs = group
    return (key, min(doc_id for _, doc_id in pairs)) if len(pairs) > 1 else None
