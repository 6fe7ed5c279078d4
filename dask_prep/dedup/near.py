"""Near-duplicates by MinHash LSH (issue 31): the per-bucket and per-cluster pieces, plain pandas/numpy.

    band rows (band key, node) ─shuffled by band key─▶ `bucket_edges`: within a bucket, only
    adjacent nodes are joined (k members give k-1 edges, so edges grow linearly)
    ─▶ `verified_edges` (optional: estimated Jaccard of the two signatures ≥ threshold)
    ─▶ `near_rejects`: connected components; the smallest copy key of each is kept, the others
    are `near_duplicate` of its doc id.

A node is a document's int64 id, `node_id(partition, position)`. The Dask graph that runs these
on the cluster belongs in `pipeline/`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dask_prep.dedup.rejects import KEY_COLUMNS, REJECT_COLUMNS

NEAR = "near_duplicate"


def exact_survivors(records: pd.DataFrame) -> pd.DataFrame:
    """The copy kept of each fingerprint (as `rejects.exact_rejects` keeps it): near-dedup's documents."""
    ordered = records.sort_values(["fingerprint", *KEY_COLUMNS], kind="stable")
    return ordered[~ordered["fingerprint"].duplicated()]


def survivor_band_rows(survivors: pd.DataFrame) -> pd.DataFrame:
    """`band_rows` of exact survivors (`exact_survivors`' rows, with their `band_*` columns)."""
    bands = [name for name in survivors.columns if name.startswith("band_")]
    return band_rows(survivors["node"].to_numpy(), survivors[bands].to_numpy())


def edge_nodes(edges: pd.DataFrame) -> pd.DataFrame:
    """The distinct nodes of some edges, as a one-column frame (`node`)."""
    return pd.DataFrame({"node": np.unique(np.concatenate([edges["a"].to_numpy(), edges["b"].to_numpy()]))})


def cluster_rejects(edges: pd.DataFrame, nodes: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """`near_rejects` of the edges whose nodes' signatures (`sig_*` columns) agree on `threshold`."""
    sigs = [name for name in nodes.columns if name.startswith("sig_")]
    if threshold > 0 and not edges.empty:
        position = pd.Series(np.arange(len(nodes)), index=nodes["node"].to_numpy())
        matrix = nodes[sigs].to_numpy()
        first, second = matrix[position[edges["a"]].to_numpy()], matrix[position[edges["b"]].to_numpy()]
        edges = edges[(first == second).mean(axis=1) >= threshold]
    return near_rejects(edges, nodes)


def cluster_summary(rejects: pd.DataFrame) -> dict:
    """Clusters, documents removed and the clusters' sizes (histogram) of `near_rejects` rows."""
    sizes = rejects["duplicate_of"].value_counts() + 1 if len(rejects) else pd.Series([], dtype="int64")
    bins = {"2": (2, 2), "3": (3, 3), "4-7": (4, 7), "8-15": (8, 15), "16+": (16, None)}
    histogram = {
        label: int(((sizes >= low) & (True if high is None else sizes <= high)).sum())
        for label, (low, high) in bins.items()
    }
    return {"clusters": int(len(sizes)), "documents_removed": int(len(rejects)), "cluster_sizes": histogram}


def band_rows(nodes: np.ndarray, keys: np.ndarray) -> pd.DataFrame:
    """(band key, node) rows: `keys` is nodes × bands (int64), one row per node and band."""
    bands = keys.shape[1] if keys.ndim == 2 else 0
    return pd.DataFrame({"band_key": keys.reshape(-1), "node": np.repeat(nodes.astype(np.int64), bands)})


def bucket_edges(rows: pd.DataFrame) -> pd.DataFrame:
    """(a, b) edges, a < b: consecutive nodes of each bucket (rows holding all of each band key)."""
    ordered = rows.sort_values(["band_key", "node"], kind="stable")
    keys, nodes = ordered["band_key"].to_numpy(), ordered["node"].to_numpy()
    same = keys[1:] == keys[:-1]
    edges = pd.DataFrame({"a": nodes[:-1][same], "b": nodes[1:][same]})
    return edges[edges["a"] != edges["b"]].drop_duplicates(ignore_index=True)


def verified_edges(edges: pd.DataFrame, signatures: dict[int, np.ndarray], threshold: float) -> pd.DataFrame:
    """The edges whose signatures agree on at least `threshold` of their values."""
    if edges.empty:
        return edges
    keep = [float(np.mean(signatures[a] == signatures[b])) >= threshold for a, b in edges.itertuples(index=False)]
    return edges[np.asarray(keep, dtype=bool)].reset_index(drop=True)


def component_labels(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For nodes 0..count-1 joined by edges (a, b), the smallest node of each one's component."""
    labels = np.arange(count)
    while True:
        smaller = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, smaller)
        np.minimum.at(labels, b, smaller)
        labels = labels[labels]  # pointer jumping: halves the paths each round
        if np.array_equal(labels, before):
            return labels


def near_rejects(edges: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """`REJECT_COLUMNS` rows: each component's members but its smallest copy key, `near_duplicate`.

    `nodes` has `node`, `partition` and the copy key (`KEY_COLUMNS`) of at least every node
    of an edge. Ranked by copy key, the smallest rank of a component is its keeper, so the
    choice does not depend on the edges' order or on the partitioning.
    """
    involved = nodes[nodes["node"].isin(edges["a"]) | nodes["node"].isin(edges["b"])]
    ranked = involved.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    rank = pd.Series(ranked.index.to_numpy(), index=ranked["node"].to_numpy())
    labels = component_labels(len(ranked), rank[edges["a"]].to_numpy(), rank[edges["b"]].to_numpy())
    rejected = labels != np.arange(len(ranked))
    found = ranked.loc[rejected, ["partition", *KEY_COLUMNS]].assign(
        rejected_by=NEAR, duplicate_of=ranked["key_id"].to_numpy()[labels[rejected]]
    )
    return found.reset_index(drop=True)[REJECT_COLUMNS]


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """LSH's chance that two documents of this Jaccard share at least one bucket."""
    return 1.0 - (1.0 - similarity**rows) ** bands
