"""Issue 30: the plain functions the workers publish with (dask_prep.output.shards), no cluster.

The steps run here one after the other, as the cluster runs them; the result must load with
`load_from_disk` and equal, row for row, the parts concatenated in order and sorted by
`datasets` itself (`Dataset.sort`, a stable sort by doc id then coref position), which is
what the client publication publishes.
"""

from __future__ import annotations

import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dask_prep.output import shards as sh
from dask_prep.output.card import in_validation

SCHEMA = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),
        ("target", pa.string()),
        ("coref_pos", pa.int32()),
        ("doc_id", pa.string()),
    ]
)


def _rows(rng: random.Random, n: int, doc_ids: list[str]) -> pa.Table:
    docs = [rng.choice(doc_ids) for _ in range(n)]
    return pa.table(
        {
            "input_ids": [[rng.randrange(30000) for _ in range(rng.randrange(1, 40))] for _ in range(n)],
            "target": [f"표적{rng.randrange(100)}" for _ in range(n)],
            "coref_pos": [rng.randrange(50) for _ in range(n)],
            "doc_id": docs,
        },
        schema=SCHEMA,
    )


def _parts(tmp_path, count: int = 6, rows: int = 120, *, empty_first_group: bool = True) -> list[str]:
    """Parts in no doc-id order, with ties (a doc id and coref_pos in two parts), Korean ids,
    and (by default) parts whose first row group has 0 rows, as a tokenize partition whose
    first batch gives no example writes them."""
    rng = random.Random(30)
    doc_ids = [f"문서-{rng.randrange(10**6):06d}" for _ in range(150)] + ["", "a", "z" * 20]
    paths = []
    for index in range(count):
        path = str(tmp_path / "parts" / f"part-{index:05d}.parquet")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with pq.ParquetWriter(path, SCHEMA) as writer:
            if empty_first_group:
                writer.write_table(SCHEMA.empty_table())
            if index != 2:  # one part with no row at all
                writer.write_table(_rows(rng, rows, doc_ids), row_group_size=37)
        paths.append(path)
    return paths


def _reference(paths: list[str]):
    """What the client publication publishes: the parts in order, sorted by `datasets`."""
    import datasets
    from datasets.table import InMemoryTable

    table = pa.concat_tables([pq.read_table(p) for p in paths])
    return datasets.Dataset(InMemoryTable(table)).sort(["doc_id", "coref_pos"]).with_format("arrow")[:]


def _publish(paths: list[str], out, *, shard_bytes: int, groups: int, validation_fraction=None) -> str:
    """The cluster's steps, in one process: survey, plan, scatter by groups, shards, commit."""
    plan = sh.plan_ranges(sh.merge_surveys([sh.survey_part(p) for p in paths]), shard_bytes)
    pieces, dataset, parquet = str(out / "pieces"), str(out / "dataset"), str(out / "parquet")
    size = -(-len(paths) // groups)
    grouped = [paths[i : i + size] for i in range(0, len(paths), size)]
    counts = [sh.scatter_parts(g, i, list(plan.boundaries), pieces) for i, g in enumerate(grouped)]
    assert sum(map(sum, counts)) == plan.rows
    results = [
        sh.write_shard(
            s,
            [sh.piece_path(pieces, s, g) for g in range(len(grouped)) if counts[g][s]],
            SCHEMA,
            plan.shards,
            dataset,
            parquet,
            validation_fraction,
        )
        for s in range(plan.shards)
    ]
    sh.commit_files(dataset, SCHEMA, plan.shards, results, validation_fraction=validation_fraction)
    return dataset


def test_the_client_publication_fails_on_a_part_whose_first_row_group_is_empty(tmp_path):
    """The bug this path fixes (issue 30): `Dataset.from_parquet` refuses such a part."""
    import datasets

    with pytest.raises(datasets.exceptions.DatasetGenerationError):
        datasets.Dataset.from_parquet(_parts(tmp_path, count=1), cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize(("shard_bytes", "groups"), [(1 << 30, 1), (20_000, 3), (5_000, 6)])
def test_shards_equal_the_sorted_parts_for_any_grouping_and_shard_count(tmp_path, shard_bytes, groups):
    import datasets

    paths = _parts(tmp_path)
    dataset = datasets.load_from_disk(_publish(paths, tmp_path / "out", shard_bytes=shard_bytes, groups=groups))
    reference = _reference(paths)
    loaded = dataset.with_format("arrow")[:]
    assert loaded.num_rows == reference.num_rows == 5 * 120
    assert loaded.equals(reference)
    # As many shards as the bytes ask for, each an Arrow file and a parquet file.
    arrow_files = [n for n in os.listdir(tmp_path / "out" / "dataset") if n.endswith(".arrow")]
    assert len(arrow_files) == len(os.listdir(tmp_path / "out" / "parquet"))
    assert len(arrow_files) == 1 if shard_bytes > 1 << 20 else len(arrow_files) > 2
    # The parquet shards: the same rows, the same order, for streaming readers.
    streamed = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "out" / "parquet" / "*.parquet"), split="train", streaming=True
    )
    assert [(r["doc_id"], r["coref_pos"], r["input_ids"]) for r in streamed] == list(
        zip(
            reference.column("doc_id").to_pylist(),
            reference.column("coref_pos").to_pylist(),
            reference.column("input_ids").to_pylist(),
            strict=True,
        )
    )


def test_a_validation_split_keeps_each_document_in_one_split(tmp_path):
    import datasets

    paths = _parts(tmp_path)
    fraction = 0.3
    loaded = datasets.load_from_disk(
        _publish(paths, tmp_path / "out", shard_bytes=8_000, groups=2, validation_fraction=fraction)
    )
    assert isinstance(loaded, datasets.DatasetDict) and list(loaded) == ["train", "validation"]
    reference = _reference(paths)
    for name in ("train", "validation"):
        want = [in_validation(d, fraction) == (name == "validation") for d in reference.column("doc_id").to_pylist()]
        expected = reference.filter(pa.array(want))
        assert 0 < expected.num_rows < reference.num_rows
        assert loaded[name].with_format("arrow")[:].equals(expected)


def test_an_empty_dataset_is_loadable_with_the_columns(tmp_path):
    import datasets

    paths = _parts(tmp_path, count=2, rows=0)
    dataset = datasets.load_from_disk(_publish(paths, tmp_path / "out", shard_bytes=1 << 20, groups=1))
    assert len(dataset) == 0 and dataset.column_names == SCHEMA.names


def test_metadata_bytes_are_about_the_arrow_bytes(tmp_path):
    """The shard count follows from the data's bytes, read from the parts' metadata alone."""
    path = _parts(tmp_path, count=1, rows=400, empty_first_group=False)[0]
    estimate = sh.survey_part(path).nbytes
    actual = pq.read_table(path).nbytes
    assert 0.8 * actual < estimate < 1.25 * actual


def test_surveys_add_up_from_an_iterator():
    """A Dask bag's reduction hands each partition over as an iterator."""
    merged = sh.merge_surveys(iter([sh.PartSurvey(2, 10, ("b",)), sh.PartSurvey(3, 20, ("a", "c"))]))
    assert merged == sh.PartSurvey(5, 30, ("b", "a", "c"))


def test_boundaries_split_the_samples_evenly_and_a_doc_id_has_one_shard():
    survey = sh.PartSurvey(rows=1000, nbytes=4 * 100, samples=tuple(f"d{i:03d}" for i in range(100)))
    plan = sh.plan_ranges(survey, shard_bytes=100)
    assert plan.shards == 4 and list(plan.boundaries) == ["d025", "d050", "d075"]
    assert [sh.shard_of(d, plan.boundaries) for d in ("a", "d024", "d025", "d074", "d099", "가")] == [0, 0, 1, 2, 3, 3]
