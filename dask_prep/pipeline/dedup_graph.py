"""Dedup's Dask graph: the rejects stay on the cluster, one list per reading task.

    specs (grouped as the analyse tasks read them) ──from_map──▶ records frames
        ──shuffle by fingerprint──▶ exact rejects ──set_index(partition, the groups' bounds)──▶
        rejects aligned with the analyse bag: its partition k holds the rejects of group k only

The same pass groups the records by doc id for the report's `duplicate_ids` (a bounded
summary, merged on a worker) and counts the repeated texts. The client holds futures and
two small values; no mapping of duplicates exists on it or is sent whole to any worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.bag as db
import dask.dataframe as dd
import numpy as np
import pandas as pd

from dask_prep.config import Config
from dask_prep.dedup.exact import merge_repeated_ids
from dask_prep.dedup.ids import SEPARATOR, merge_renames_summaries, rename_rows, renames_summary
from dask_prep.dedup.minhash import NearParams
from dask_prep.dedup.near import (
    band_rows,
    bucket_edges,
    cluster_rejects,
    cluster_summary,
    edge_nodes,
    exact_survivors,
    survivor_band_rows,
)
from dask_prep.dedup.rejects import (
    KEY_COLUMNS,
    aligned,
    empty_aligned,
    empty_rejects,
    exact_rejects,
    records_frame,
    rejects_by_copy,
    repeated_ids_summary,
    repeated_texts,
)
from dask_prep.io.reading import PartitionReader, PartitionSpec
from dask_prep.pipeline.compute import compute_with_progress
from dask_prep.pipeline.progress import Progress

# Records per shuffled piece, as the bag groupby before it: one piece per this many partitions.
PARTITIONS_PER_PIECE = 16
# Task-based shuffles: plain graph tasks, which persist beside the bag and delayed pieces of
# this pass (P2P's shuffle extension fails when its expressions are materialised with them).
SHUFFLE = "tasks"


@dataclass
class Dedup:
    """What dedup found: `rejects` is None when dedup is off (or the input empty)."""

    rejects: db.Bag | None  # partition k: ALIGNED_COLUMNS rows of the k-th group's partitions
    duplicate_texts: int
    duplicate_ids: dict | None
    near: dict | None = None  # near-duplicate clusters (`near.cluster_summary`), None when off
    renamed_ids: dict | None = None  # documents given a new id (`ids.renames_summary`)


NO_DEDUP = Dedup(None, 0, None)  # `Pipeline.judged(NO_DEDUP)`: the rules alone, no dedup pass


def _records(specs: list[PartitionSpec], text_field: str, id_field: str, near: NearParams | None) -> pd.DataFrame:
    with PartitionReader(text_field, id_field) as reader:
        return records_frame(((spec.index, reader.read(spec)[0]) for spec in specs), near)


def _renames(survivors: dd.DataFrame, pieces: int, names: dict[str, str]) -> dd.DataFrame:
    """New ids for the documents whose id another kept document has: survivors shuffled by id family."""
    families = survivors[["partition", *KEY_COLUMNS]].assign(
        family=survivors["key_id"].str.split(SEPARATOR, n=1).str[0]
    )
    by_family = families.shuffle(on="family", npartitions=pieces, shuffle_method=SHUFFLE)
    return by_family.map_partitions(rename_rows, names, meta=empty_aligned())


def _renames_summary(rows: pd.DataFrame, names: dict[str, str]) -> pd.Series:
    return pd.Series([renames_summary(rows, names)], dtype=object)


def _near_rejects(records: dd.DataFrame, by_text: dd.DataFrame, pieces: int, threshold: float) -> dd.DataFrame:
    """Near-duplicates among the exact survivors: band rows shuffled by band key, adjacent
    pairs of each bucket, then one task (on a worker) clusters the candidate edges, verified
    on the signatures of their nodes only. The signatures never travel in a shuffle: the
    candidates' nodes are looked up in the reading tasks' `records`, where they were made."""
    survivors = by_text.map_partitions(exact_survivors)
    rows = survivors.map_partitions(survivor_band_rows, meta=band_rows(np.zeros(0), np.zeros((0, 1))))
    buckets = rows.shuffle(on="band_key", npartitions=pieces, shuffle_method=SHUFFLE)
    edges = buckets.map_partitions(bucket_edges, meta=pd.DataFrame({"a": [], "b": []}, dtype="int64"))
    edges = edges.repartition(npartitions=1)
    needed = edges.map_partitions(edge_nodes, meta=pd.DataFrame({"node": []}, dtype="int64"))
    columns = ["node", "partition", *KEY_COLUMNS] + [c for c in records.columns if c.startswith("sig_")]
    nodes = records[columns].merge(needed, on="node", how="inner").repartition(npartitions=1)
    return dd.map_partitions(cluster_rejects, edges, nodes, threshold, meta=empty_rejects(), align_dataframes=False)


def _near_summary(rejects: pd.DataFrame) -> pd.Series:
    return pd.Series([cluster_summary(rejects)], dtype=object)


def _texts_count(records: pd.DataFrame) -> pd.Series:
    return pd.Series([repeated_texts(records)], dtype="int64")


def _ids_summary(records: pd.DataFrame, names: dict[str, str]) -> pd.Series:
    return pd.Series([repeated_ids_summary(records, names)], dtype=object)


def find_duplicates(
    groups: list[list[PartitionSpec]],
    config: Config,
    progress: Progress | None = None,
    names: dict[str, str] | None = None,
) -> Dedup:
    """Dedup of the partitions `groups` (consecutive specs, as the analyse bag groups them).

    Exact (and near) duplicates when `config.input.dedup` is on; in any case new ids for the
    documents that share an id (`dedup.ids`). `names` maps full input paths to file keys.
    """
    specs = [spec for group in groups for spec in group]
    if not specs:
        return Dedup(None, 0, merge_repeated_ids([]))
    exact, settings = config.input.dedup, config.dedup.near
    near = NearParams(settings.ngram, settings.bands, settings.rows) if exact and settings.enabled else None
    fields = {"text_field": config.input.text_field, "id_field": config.input.id_field, "near": near}
    records = dd.from_map(_records, groups, **fields, meta=records_frame([], near))
    pieces = max(1, len(specs) // PARTITIONS_PER_PIECE)
    # Dedup's shuffles move what they need: not the signatures (`_near_rejects` looks them up).
    signatures = [name for name in records.columns if name.startswith("sig_")]
    by_text = records.drop(columns=signatures).shuffle(on="fingerprint", npartitions=pieces, shuffle_method=SHUFFLE)
    rejects = by_text.map_partitions(exact_rejects, meta=empty_rejects()) if exact else None
    clusters = None
    if near is not None:
        near_found = _near_rejects(records, by_text, pieces, settings.threshold)
        clusters = near_found.map_partitions(_near_summary, meta=pd.Series([], dtype=object))
        rejects = dd.concat([rejects, near_found])
    survivors = by_text.map_partitions(exact_survivors) if exact else records
    renames = _renames(survivors, pieces, names or {})
    found = renames if rejects is None else dd.concat([rejects.map_partitions(aligned, meta=empty_aligned()), renames])
    texts = by_text.map_partitions(_texts_count, meta=pd.Series([], dtype="int64")).sum()
    by_id = records[["partition", *KEY_COLUMNS, "fingerprint"]].shuffle(
        on="key_id", npartitions=pieces, shuffle_method=SHUFFLE
    )
    ids = by_id.map_partitions(_ids_summary, names or {}, meta=pd.Series([], dtype=object))
    renamed = renames.map_partitions(_renames_summary, names or {}, meta=pd.Series([], dtype=object))
    # Partition k of the result: the rows whose partition index is in group k.
    bounds = [group[0].index for group in groups] + [groups[-1][-1].index]
    aligned_rows = found.set_index("partition", divisions=bounds, shuffle_method=SHUFFLE)
    # One computation (the records are read once); the rejects stay on the workers.
    small = [texts, ids, renamed] + ([clusters] if clusters is not None else [])
    aligned_rows, *small = dask.persist(aligned_rows, *small)
    texts, ids, renamed, *near_summary = compute_with_progress("dedup", progress, *small)
    # A summary per shuffled piece, each at most a few examples: bounded, merged here.
    summary = near_summary[0].iloc[0] if near_summary else None
    return Dedup(
        aligned_rows.to_bag(index=True),
        int(texts) if exact else 0,
        merge_repeated_ids(list(ids)),
        summary,
        merge_renames_summaries(list(renamed)),
    )


def rejects_of(rows: Any) -> dict:
    """{partition: {copy key: (rejected_by, duplicate_of, new id)}} of one analyse task's rows."""
    return rejects_by_copy(rows or [])
