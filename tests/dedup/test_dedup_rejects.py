"""Dedup's per-partition reject lists (issue 30): the pandas pieces the cluster runs, without a cluster."""

from __future__ import annotations

import pandas as pd

from dask_prep.dedup.ids import rename_rows
from dask_prep.dedup.near import exact_survivors
from dask_prep.dedup.rejects import (
    REJECT_COLUMNS,
    aligned,
    apply_rejects,
    exact_rejects,
    records_frame,
    rejects_by_copy,
    repeated_ids_summary,
    repeated_texts,
)
from dask_prep.document import Document


def _doc(doc_id: str, text: str, source: str = "a.jsonl", line: int = 1) -> Document:
    return Document(doc_id=doc_id, text=text, source=source, line=line)


def _partitions() -> list[tuple[int, list[Document]]]:
    malformed = _doc("x", None, line=3)
    malformed.rejected_by = "malformed"
    return [
        (0, [_doc("b", "같은 글", line=1), _doc("c", "다른 글", line=2), malformed]),
        (1, [_doc("a", "같은  글", "b.jsonl", 1), _doc("d", "같은 글", "b.jsonl", 2), _doc("c", "셋째", "b.jsonl", 3)]),
    ]


def test_records_skip_malformed_documents_and_carry_their_partition() -> None:
    records = records_frame(_partitions())
    assert list(records["partition"]) == [0, 0, 1, 1, 1]
    assert list(records["key_id"]) == ["b", "c", "a", "d", "c"]


def test_the_smallest_copy_key_is_kept_and_the_others_name_it() -> None:
    records = records_frame(_partitions())
    rejects = exact_rejects(records.sample(frac=1, random_state=3))  # any order of arrival
    assert list(rejects.columns) == REJECT_COLUMNS
    rows = sorted(rejects.itertuples(index=False, name=None))
    assert rows == [(0, "b", "a.jsonl", 1, "duplicate", "a"), (1, "d", "b.jsonl", 2, "duplicate", "a")]
    assert repeated_texts(records) == 1
    assert exact_rejects(records.iloc[:0]).empty


def test_rejects_reach_only_their_partition_documents() -> None:
    docs = _partitions()
    rows = aligned(exact_rejects(records_frame(docs)))  # as the analyse tasks receive them
    by_partition = rejects_by_copy(rows.itertuples(index=False, name=None))
    assert set(by_partition) == {0, 1}
    for index, partition_docs in docs:
        apply_rejects(partition_docs, by_partition[index])
    judged = [(d.doc_id, d.rejected_by, d.duplicate_of) for _, part in docs for d in part]
    assert judged == [
        ("b", "duplicate", "a"),
        ("c", None, None),
        ("x", "malformed", None),
        ("a", None, None),
        ("d", "duplicate", "a"),
        ("c", None, None),
    ]


def test_documents_sharing_an_id_get_new_ids_on_the_same_path_as_the_rejects() -> None:
    docs = _partitions()
    records = records_frame(docs)
    rows = pd.concat([aligned(exact_rejects(records)), rename_rows(exact_survivors(records))])
    by_partition = rejects_by_copy(rows.itertuples(index=False, name=None))
    for index, partition_docs in docs:
        apply_rejects(partition_docs, by_partition.get(index, {}))
    kept = [d.doc_id for _, part in docs for d in part if d.rejected_by is None]
    # The two different "c" texts: the first by (path, line) keeps its id, the other gets c~2.
    assert kept == ["c", "a", "c~2"]
    assert len(set(kept)) == len(kept)


def test_repeated_ids_summary_matches_the_per_id_functions() -> None:
    summary = repeated_ids_summary(records_frame(_partitions()))
    assert summary["ids"] == 1 and summary["with_different_texts"] == 1
    (example,) = summary["examples"]
    assert example["id"] == "c" and example["first_locations"] == ["a.jsonl:2", "b.jsonl:3"]
    assert repeated_ids_summary(records_frame([]))["ids"] == 0
    assert isinstance(records_frame([]), pd.DataFrame)


def test_the_report_plots_near_duplicate_clusters(tmp_path) -> None:
    import io

    from PIL import Image

    from dask_prep.config import preset
    from dask_prep.dedup.near import cluster_summary
    from dask_prep.report.plots import figure_png, report_figures

    rejects = pd.DataFrame({"duplicate_of": ["a", "a", "b", "c", "c", "c", "c"]})
    near = cluster_summary(rejects)
    assert near == {
        "clusters": 3,
        "documents_removed": 7,
        "cluster_sizes": {"2": 1, "3": 1, "4-7": 1, "8-15": 0, "16+": 0},
    }
    report = {
        "documents": {"read": 0, "malformed": 0, "rejected": 0, "kept": 0},
        "examples": {"before_cap": 0, "after_cap": 0, "dropped": {}, "written": 0},
        "config": preset("seed-v2").to_dict(),
        "near_duplicates": near,
    }
    figures = report_figures(report, str(tmp_path))
    Image.open(io.BytesIO(figure_png(figures["Near-duplicate clusters"]))).verify()
