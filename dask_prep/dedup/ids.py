"""Unique document ids: documents that share an id, other than copies dedup rejects, get new ids.

Ids collide in real input: `1` and `"1"` both read as "1", a null id's derived `file:line`
can equal another line's explicit id, two files can reuse ids. Of the documents that share
an id, the first by (full input path, line) keeps it; each other gets `ID~N`, the smallest
N >= 2 that is no document's id. Ids are grouped by their *family*, the part before the
first `~`, so one group holds every id a new one could equal: the new ids depend on the
whole input only, never on the partitioning. A copy that dedup rejects keeps its id (its
row in `decisions/` names the id it copies), so a file given under two paths renames nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from dask_prep.dedup.exact import CopyKey, location, repeated_id
from dask_prep.dedup.rejects import KEY_COLUMNS, aligned
from dask_prep.document import Document

SEPARATOR = "~"
SAMPLE_RENAMES = 5  # new ids listed in the report, with where their documents are

# (full input path, line) -> new id
Renames = dict[tuple[str, int], str]


def id_family(pair: tuple[int, CopyKey]) -> str:
    """The part of a (fingerprint, copy key) pair's id before the first `~`: its group."""
    return pair[1][0].split(SEPARATOR, 1)[0]


def family_renames(
    group: tuple[str, list[tuple[int, CopyKey]]], keep: dict[int, Any], names: dict[str, str] | None = None
) -> list[tuple]:
    """((path, line), new id, "file:line") of every document of one id family that needs a new id.

    `keep` is dedup's {fingerprint: copy key kept}: a copy it rejects is not renamed.
    `names` maps full input paths to the files' keys (for the report).
    """
    _, pairs = group
    taken = {key[0] for _, key in pairs}
    survivors = sorted(key for fp, key in pairs if keep.get(fp, key) == key)
    renames: list[tuple] = []
    suffix: dict[str, int] = {}
    for previous, key in zip([None, *survivors], survivors, strict=False):
        doc_id = key[0]
        if previous is None or previous[0] != doc_id:
            continue  # the first document with this id keeps it
        n = suffix.get(doc_id, 2)
        while f"{doc_id}{SEPARATOR}{n}" in taken:
            n += 1
        new_id = f"{doc_id}{SEPARATOR}{n}"
        suffix[doc_id] = n + 1
        taken.add(new_id)
        source, line = location(key, names)
        renames.append(((key[1], key[2]), new_id, f"{source}:{line}"))
    return renames


def rename_documents(docs: Iterable[Document], renames: Renames) -> None:
    """Give the documents listed in `renames` their new ids (after dedup, which compares the old)."""
    if not renames:
        return
    for doc in docs:
        new_id = renames.get((doc.path, doc.line))
        if new_id is not None:
            doc.doc_id = new_id


def summarize_renames(found: Iterable[tuple]) -> tuple[Renames, dict]:
    """The renames as {(path, line): new id}, and the report's `renamed_ids`: a count and the first few."""
    found = sorted(found, key=lambda item: item[1])
    summary = {
        "documents": len(found),
        "examples": [{"id": new_id, "location": where} for _, new_id, where in found[:SAMPLE_RENAMES]],
    }
    return {where: new_id for where, new_id, _ in found}, summary


def family_repeated_ids(
    group: tuple[str, list[tuple[int, CopyKey]]], names: dict[str, str] | None = None
) -> list[dict]:
    """`exact.repeated_id` of every id of one family found on several documents."""
    by_id: dict[str, list[tuple[int, CopyKey]]] = {}
    for pair in group[1]:
        by_id.setdefault(pair[1][0], []).append(pair)
    found = (repeated_id(item, names) for item in sorted(by_id.items()))
    return [item for item in found if item is not None]


def rename_rows(survivors: pd.DataFrame, names: dict[str, str] | None = None) -> pd.DataFrame:
    """`rejects.ALIGNED_COLUMNS` rows giving new ids (`family_renames`) to the documents of these
    records (exact dedup's survivors, every member of their id families present) that need one."""
    rows = []
    families = survivors["key_id"].str.split(SEPARATOR, n=1).str[0]
    # Only a family with an id on two documents renames anything: the others are not grouped
    # (one Python group per document made this the dedup pass's costliest task).
    shared = families.isin(families[survivors["key_id"].duplicated(keep=False)].unique())
    survivors, families = survivors[shared], families[shared]
    for family, group in survivors.groupby(families, sort=False):
        lines = (int(line) for line in group["key_line"])
        keys = list(zip(group["key_id"], group["key_source"], lines, strict=True))
        where = {
            (path, line): (part, doc_id) for (doc_id, path, line), part in zip(keys, group["partition"], strict=True)
        }
        for (path, line), new_id, _ in family_renames((family, [(0, key) for key in keys]), {}, names):
            part, old_id = where[(path, line)]
            rows.append((part, old_id, path, line, new_id))
    return aligned(pd.DataFrame(rows, columns=["partition", *KEY_COLUMNS, "new_id"]))


def renames_summary(rows: pd.DataFrame, names: dict[str, str] | None = None) -> dict:
    """The report's `renamed_ids` of these rename rows: how many, and the first few by new id."""
    named = rows[rows["new_id"].notna()].sort_values("new_id")
    return {
        "documents": int(len(named)),
        "examples": [
            {"id": new_id, "location": f"{(names or {}).get(path, path)}:{int(line)}"}
            for new_id, path, line in named[["new_id", "key_source", "key_line"]]
            .head(SAMPLE_RENAMES)
            .itertuples(index=False)
        ],
    }


def merge_renames_summaries(parts: Iterable[dict]) -> dict:
    parts = list(parts)
    examples = sorted((e for p in parts for e in p["examples"]), key=lambda e: e["id"])
    return {"documents": sum(p["documents"] for p in parts), "examples": examples[:SAMPLE_RENAMES]}
