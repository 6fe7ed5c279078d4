"""Dedup's per-partition reject lists as pandas frames: the plain pieces the cluster runs.

The fingerprint pass makes one `records` frame per reading task: a row per well-formed
document with the partition it belongs to, its copy key (`exact.copy_key`) and its
fingerprint. `pipeline/dedup_graph.py` shuffles those frames by fingerprint, turns each
shuffled piece into rejects (`exact_rejects`), and shuffles the rejects back by partition,
so that the task that analyses partition i receives only partition i's rejects
(`rejects_by_copy`, then `apply_rejects`). No mapping of duplicates is ever whole in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from dask_prep.dedup.exact import CopyKey, copy_key, fingerprint, repeated_id, summarize_repeated_ids
from dask_prep.dedup.minhash import NearParams, near_frame, node_id
from dask_prep.document import Document

KEY_COLUMNS = ["key_id", "key_source", "key_line"]  # the copy key, in its order
REJECT_COLUMNS = ["partition", *KEY_COLUMNS, "rejected_by", "duplicate_of"]
# What reaches an analyse task: its partitions' rejects, and the new ids of documents whose
# id another document has (`ids.rename_rows`); a row holds one or the other.
ALIGNED_COLUMNS = [*REJECT_COLUMNS, "new_id"]


def records_frame(partitions: Iterable[tuple[int, list[Document]]], near: NearParams | None = None) -> pd.DataFrame:
    """(partition, copy key, fingerprint) of every well-formed document of these partitions.

    With `near` (ngram, bands, rows) also its node (`near.node_id`), LSH band keys
    (`band_0`...) and MinHash signature cut to 16 bits a value (`sig_0`..., for verification).
    """
    rows, texts = [], []
    for index, docs in partitions:
        for position, doc in enumerate(docs):
            if doc.rejected_by is None:
                rows.append((index, *copy_key(doc), fingerprint(doc.text), node_id(index, position)))
                texts.append(doc.text)
    frame = _frame(rows, ["partition", *KEY_COLUMNS, "fingerprint", "node"])
    if near is None:
        return frame.drop(columns="node")
    return pd.concat([frame, near_frame(texts, near)], axis=1)


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=columns)
    types = {"partition": "int64", "key_line": "int64", "fingerprint": "int64", "node": "int64"}
    types.update({name: "string" for name in ("key_id", "key_source", "rejected_by", "duplicate_of", "new_id")})
    return frame.astype({name: kind for name, kind in types.items() if name in columns})


def empty_rejects() -> pd.DataFrame:
    return _frame([], REJECT_COLUMNS)


def empty_aligned() -> pd.DataFrame:
    return _frame([], ALIGNED_COLUMNS)


def aligned(frame: pd.DataFrame) -> pd.DataFrame:
    """Reject rows (`REJECT_COLUMNS`) or rename rows as `ALIGNED_COLUMNS` (missing columns null)."""
    return frame.reindex(columns=ALIGNED_COLUMNS).astype(empty_aligned().dtypes.to_dict())


def exact_rejects(records: pd.DataFrame) -> pd.DataFrame:
    """The copies to reject among records holding every copy of their fingerprints.

    Of each fingerprint's copies the smallest copy key is kept (a total order, so exactly
    one survives whatever the partitioning); the others are `duplicate` of its doc id.
    """
    ordered = records.sort_values(["fingerprint", *KEY_COLUMNS], kind="stable")
    first = ~ordered["fingerprint"].duplicated()
    kept_id = ordered["key_id"].where(first).ffill()
    rejects = ordered.loc[~first, ["partition", *KEY_COLUMNS]].assign(
        rejected_by="duplicate", duplicate_of=kept_id[~first]
    )
    return rejects.reset_index(drop=True).astype(empty_rejects().dtypes.to_dict())


def repeated_texts(records: pd.DataFrame) -> int:
    """How many fingerprints of these records (all copies of each present) have several copies."""
    counts = records["fingerprint"].value_counts()
    return int((counts > 1).sum())


Found = tuple[str | None, str | None, str | None]  # (rejected_by, duplicate_of, new id)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None  # pandas' missing strings are pd.NA


def rejects_by_copy(rows: Iterable[tuple]) -> dict[int, dict[CopyKey, Found]]:
    """{partition: {copy key: (rejected_by, duplicate_of, new id)}} from `ALIGNED_COLUMNS` rows."""
    found: dict[int, dict[CopyKey, Found]] = {}
    for partition, key_id, key_source, key_line, rejected_by, duplicate_of, new_id in rows:
        found.setdefault(int(partition), {})[(key_id, key_source, int(key_line))] = (
            _text(rejected_by),
            _text(duplicate_of),
            _text(new_id),
        )
    return found


def apply_rejects(docs: list[Document], rejects: Mapping[CopyKey, Found]) -> list[Document]:
    """Mark the partition's documents that dedup rejected (with the doc id of the kept copy), and
    give the documents whose id another document has their new ids (after the lookup by the old)."""
    if rejects:
        for doc in docs:
            if doc.rejected_by is None:
                found = rejects.get(copy_key(doc))
                if found is not None:
                    rejected_by, duplicate_of, new_id = found
                    if rejected_by is not None:
                        doc.rejected_by, doc.duplicate_of = rejected_by, duplicate_of
                    if new_id is not None:
                        doc.doc_id = new_id
    return docs


def repeated_ids_summary(records: pd.DataFrame, names: Mapping[str, str] | None = None) -> dict:
    """`exact.summarize_repeated_ids` of records that hold every copy of their doc ids; `names`
    maps full input paths to the files' keys, which the report names files by."""
    counts = records["key_id"].value_counts()
    repeated = records[records["key_id"].isin(counts.index[counts > 1])]
    found = []
    for doc_id, group in repeated.groupby("key_id", sort=True):
        sources = ((names or {}).get(path, path) for path in group["key_source"])
        keys = zip(group["key_id"], sources, (int(line) for line in group["key_line"]), strict=True)
        found.append(repeated_id((str(doc_id), list(zip(group["fingerprint"], keys, strict=True)))))
    return summarize_repeated_ids(found)
