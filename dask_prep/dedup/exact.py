"""Exact deduplication before Kiwi: the key is a hash of the NFKC, whitespace-collapsed text.

Across all partitions and files, one copy of each text is kept: the first by (document id,
source file, line), a total order, so exactly one survives even where ids repeat across
files; the others are rejected as `duplicate`. Ids that occur more than once (with the
same or with different texts) are counted for the report. The global step (which copies are duplicates) runs
on Dask in `graph.py`; here are the plain per-document pieces.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from typing import Any

from dask_prep.document import Document

# (doc id, full input path or URL, line): the order in which copies are kept. The full path
# tells apart files whose keys are equal (mirror/v1/a.jsonl, mirror/v2/a.jsonl).
CopyKey = tuple[str, str, int]
SAMPLE_IDS = 5  # repeated ids listed in the report, with their first locations


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


def copy_key(doc: Document) -> CopyKey:
    return (doc.doc_id, doc.path, doc.line)


def fingerprints(docs: Iterable[Document]) -> list[tuple[int, CopyKey]]:
    """(fingerprint, copy key) of every well-formed document."""
    return [(fingerprint(d.text), copy_key(d)) for d in docs if d.rejected_by is None]


def mark_duplicates(docs: Iterable[Document], keep: dict[int, Any]) -> None:
    """Reject every document whose fingerprint has another copy chosen to keep.

    `keep` maps the fingerprint of each duplicated text to the copy that survives: its
    copy key, or (as before) its doc id alone.
    """
    if not keep:
        return
    for doc in docs:
        if doc.rejected_by is None:
            survivor = keep.get(fingerprint(doc.text))
            if survivor is None:
                continue
            this = copy_key(doc) if isinstance(survivor, tuple) else doc.doc_id
            if survivor != this:
                doc.rejected_by = "duplicate"


def first_of_repeated(group: tuple[int, list[tuple[int, Any]]]) -> tuple[int, Any] | None:
    """(fingerprint, first copy by copy key) of a text with several copies; None if unique."""
    key, pairs = group
    return (key, min(copy for _, copy in pairs)) if len(pairs) > 1 else None


def location(key: CopyKey, names: dict[str, str] | None = None) -> tuple[str, int]:
    """(file, line) of a copy key; `names` maps full input paths to the files' keys."""
    return ((names or {}).get(key[1], key[1]), key[2])


def repeated_id(group: tuple[str, list[tuple[int, CopyKey]]], names: dict[str, str] | None = None) -> dict | None:
    """An id found on several documents: how many, whether their texts differ, where first."""
    doc_id, pairs = group
    if len(pairs) < 2:
        return None
    where = sorted(location(key, names) for _, key in pairs)
    return {
        "id": doc_id,
        "copies": len(pairs),
        "different_texts": len({fp for fp, _ in pairs}) > 1,
        "first_locations": [f"{source}:{line}" for source, line in where[:3]],
    }


def summarize_repeated_ids(found: Iterable[dict]) -> dict:
    """The report's `duplicate_ids`: counts, and the first ids (by id) with their locations."""
    summary = {"ids": 0, "with_different_texts": 0, "examples": [], "examples_with_different_texts": []}
    for item in found:
        summary = merge_repeated_ids([summary, _one(item)])
    return summary


def _one(item: dict) -> dict:
    different = item["different_texts"]
    return {
        "ids": 1,
        "with_different_texts": int(different),
        "examples": [item],
        "examples_with_different_texts": [item] if different else [],
    }


def merge_repeated_ids(parts: Iterable[dict]) -> dict:
    parts = list(parts)
    merged: dict = {"ids": sum(p["ids"] for p in parts)}
    merged["with_different_texts"] = sum(p["with_different_texts"] for p in parts)
    for name in ("examples", "examples_with_different_texts"):
        items = sorted((item for p in parts for item in p[name]), key=lambda item: item["id"])
        merged[name] = items[:SAMPLE_IDS]
    return merged
