"""The global dedup step as a Dask graph: which copy of each repeated text is kept, repeated ids,
and the new ids of documents that share an id (`dask_prep.dedup.ids`)."""

from __future__ import annotations

import operator
from typing import Any

import dask
import dask.bag as db

from dask_prep.dedup.exact import first_of_repeated, merge_repeated_ids, summarize_repeated_ids
from dask_prep.dedup.ids import family_renames, family_repeated_ids, id_family, summarize_renames


def _keep_map(pairs: list) -> dict:
    return dict(pairs)


def _merge_keep_maps(maps: list[dict]) -> dict:
    return {fp: copy for found in maps for fp, copy in found.items()}


def dedup_plan(pairs: db.Bag, partitions: int, dedup: bool, names: dict[str, str]) -> tuple[dict, Any, dict, Any]:
    """(keep, duplicate_ids, renamed ids, renamed summary) from the (fingerprint, copy key) pairs.

    Both groupbys shuffle across the cluster (tasks shuffle); only the duplicated
    fingerprints, the repeated ids' summary and the renamed documents reach the client.
    `names` maps full input paths to the files' keys (the report names files by key).
    """
    if dedup:
        by_text = pairs.groupby(operator.itemgetter(0), shuffle="tasks", npartitions=partitions)
        keep_item = by_text.map(first_of_repeated).filter(None).reduction(_keep_map, _merge_keep_maps)
    else:
        keep_item = dask.delayed({})
    names_item = dask.delayed(names, pure=True)
    by_family = pairs.groupby(id_family, shuffle="tasks", npartitions=partitions)
    keep, duplicate_ids, renames = dask.compute(
        keep_item,
        by_family.map(family_repeated_ids, names_item).flatten().reduction(summarize_repeated_ids, merge_repeated_ids),
        by_family.map(family_renames, keep_item, names_item).flatten(),
    )
    renamed, summary = summarize_renames(renames)
    return keep, duplicate_ids, renamed, summary
