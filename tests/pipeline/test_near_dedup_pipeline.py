"""Near-dedup through the pipeline on the cluster (issue 31): the constructed corpus, decisions
with `duplicate_of`, the same decisions for partition sizes 100 and 2,000 and 1 or 2 workers."""

from __future__ import annotations

import json
import random

import pytest
from support.near_corpus import constructed

from dask_prep.dedup.minhash import jaccard


@pytest.fixture(scope="module")
def near_corpus(shard0, tmp_path_factory):
    """The constructed corpus as JSON Lines in a shuffled order, ids `doc0000`..., plus two exact copies."""
    texts, kinds = constructed(shard0)
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    lines = [{"id": f"doc{i:04d}", "text": texts[i]} for i in order]
    lines += [{"id": "zz-exact-0", "text": texts[0]}, {"id": "zz-exact-1", "text": texts[1]}]
    folder = tmp_path_factory.mktemp("near")
    path = folder / "near.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")
    return path, texts, kinds


def _decided(output_dir) -> dict[str, tuple]:
    import pyarrow.parquet as pq

    rows = pq.read_table(output_dir / "decisions", columns=["doc_id", "rejected_by", "duplicate_of"]).to_pylist()
    return {r["doc_id"]: (r["rejected_by"], r["duplicate_of"]) for r in rows}


@pytest.fixture(scope="module")
def near_config(tokenizer_dir):
    from support.data import seed_config_with

    return seed_config_with(tokenizer_dir)


@pytest.fixture(scope="module")
def near_runs(near_corpus, near_config, pipeline_runner, tmp_path_factory) -> dict:
    """{partition size: (report, decisions, output dir)} of whole runs with partitions of 100 and 2,000."""
    runs = {}
    for size in (100, 2000):
        out = tmp_path_factory.mktemp(f"near-{size}") / "out"
        report = pipeline_runner([near_corpus[0]], near_config, out, exact_partition_size=size).report
        runs[size] = (report, _decided(out), out)
    return runs


def test_the_same_decisions_for_partition_sizes_100_and_2000(near_runs) -> None:
    assert near_runs[100][1] == near_runs[2000][1]


def test_near_copies_are_removed_and_name_the_kept_copy(near_corpus, near_runs) -> None:
    _, texts, kinds = near_corpus
    report, decided, _ = near_runs[100]
    near = {doc: of for doc, (why, of) in decided.items() if why == "near_duplicate"}
    assert decided["zz-exact-0"] == ("duplicate", "doc0000") and decided["zz-exact-1"] == ("duplicate", "doc0001")
    assert report["near_duplicates"]["documents_removed"] == len(near) == report["rejected"]["near_duplicate"]
    assert report["near_duplicates"]["clusters"] >= 190
    index = {f"doc{i:04d}": i for i in range(len(texts))}
    close = [pair for pair, kind in kinds.items() if kind not in ("template", "half")]
    found = sum(f"doc{i:04d}" in near or f"doc{j:04d}" in near for i, j in close)
    assert found / len(close) >= 0.95
    precise = [jaccard(texts[index[doc]], texts[index[of]], 5) >= 0.7 for doc, of in near.items()]
    assert sum(precise) / len(precise) >= 0.98
    negatives = [pair for pair, kind in kinds.items() if kind in ("template", "half")]
    both = sum(f"doc{i:04d}" not in near and f"doc{j:04d}" not in near for i, j in negatives)
    assert both / len(negatives) >= 0.99


def test_resume_reuses_the_finished_partitions_near_decisions(near_corpus, near_config, near_runs, client, tmp_path):
    """A run interrupted after some partitions (their stats removed for the others), resumed:
    the finished partitions are reused, the others get the same near-dedup decisions."""
    import shutil

    from dask_prep.pipeline.graph import Pipeline

    report, decided, clean = near_runs[100]
    out = tmp_path / "resumed"
    shutil.copytree(clean, out)
    (out / "report.json").unlink()
    shutil.rmtree(next(out.glob("entity_coref_v2_*")))
    unfinished = sorted((out / "_work" / "stats").glob("analyse-*.json"))[1::2]
    assert len(unfinished) >= 2
    for stats in unfinished:
        stats.unlink()
    with client.as_current():
        resumed = Pipeline([str(near_corpus[0])], near_config, str(out)).run(resume=True)
    assert resumed["partitions"]["analysis_reused"] == report["partitions"]["total"] - len(unfinished)
    assert resumed["near_duplicates"] == report["near_duplicates"]
    assert resumed["rejected"] == report["rejected"]
    assert _decided(out) == decided


def test_the_same_rejects_on_one_worker_as_on_two(near_corpus, near_config, client) -> None:
    from distributed import Client, LocalCluster

    from dask_prep.pipeline.graph import Pipeline

    path = near_corpus[0]

    def rejects() -> list:
        pipeline = Pipeline([str(path)], near_config)
        pipeline.partitions(100)
        return sorted(tuple(row) for row in pipeline.dedup().rejects.compute())

    with client.as_current():
        two = rejects()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as one, one.as_current():
            assert rejects() == two
    assert any(row[4] == "near_duplicate" for row in two)
