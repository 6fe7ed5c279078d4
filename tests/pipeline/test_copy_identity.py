"""Issue 32, cases 2 and 8 on a real cluster: the same file under two paths gives the clean run's
dataset; documents that share an id keep apart (their examples, the split's document count)."""

from __future__ import annotations

import json
import shutil

import pytest
from support.data import SAMPLE, SAMPLE_TOKENIZER, seed_config_with

pytestmark = pytest.mark.cluster  # LocalClusters and dask-prep processes


@pytest.fixture(scope="module")
def sample_config():
    return seed_config_with(SAMPLE_TOKENIZER)


@pytest.fixture(scope="module")
def clean_run(pipeline_runner, sample_config, tmp_path_factory):
    return pipeline_runner([SAMPLE], sample_config, tmp_path_factory.mktemp("clean") / "out")


def _rows(run) -> list:
    return sorted((r["doc_id"], r["target"], r["coref_pos"], tuple(r["input_ids"])) for r in run.rows())


def test_mirrors_a_file_twice_and_a_directory_with_its_file_give_the_clean_dataset(
    clean_run, pipeline_runner, sample_config, tmp_path
):
    for version in ("v1", "v2"):
        (tmp_path / "mirror" / version).mkdir(parents=True)
        shutil.copy(SAMPLE, tmp_path / "mirror" / version / "shard0.jsonl")
    first = tmp_path / "mirror" / "v1" / "shard0.jsonl"
    expected = _rows(clean_run)
    assert len(expected) == 208  # the sample's examples under issue 33's name rules (sample/README.md)
    for name, inputs, read in (
        ("mirrors", [first, tmp_path / "mirror" / "v2" / "shard0.jsonl"], 80),
        ("twice", [first, first], 40),
        ("directory_and_file", [tmp_path / "mirror", first], 80),
    ):
        run = pipeline_runner(inputs, sample_config, tmp_path / name)
        assert run.report["documents"]["read"] == read, name
        assert _rows(run) == expected, name
        assert run.report["rejected"].get("duplicate", 0) == read - 40, name


def _colliding_sample(folder, kept: list[str]) -> dict[str, str]:
    """The sample with ids that collide: 1 and "1", a null id and the explicit id equal to its
    derived one, and an explicit "1~2". Returns {original id: its id here}."""
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    line_of = {r["id"]: i for i, r in enumerate(records, 1)}
    a, b, c, d, e = kept[:5]
    new = {a: 1, b: "1", c: None, d: f"c.jsonl:{line_of[c]}", e: "1~2"}
    for record in records:
        if record["id"] in new:
            record["id"] = new[record["id"]]
    (folder / "c.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return new


@pytest.mark.parametrize("partition_size", [3, 1000])
def test_documents_sharing_an_id_keep_their_examples_apart(
    partition_size, clean_run, pipeline_runner, sample_config, tmp_path
):
    kept_with_examples = sorted({r["doc_id"] for r in clean_run.rows(["doc_id"])})
    assert len(kept_with_examples) == 25
    changed = _colliding_sample(tmp_path, kept_with_examples)
    config = sample_config
    config.output.validation_fraction = 0.5
    try:
        run = pipeline_runner([tmp_path / "c.jsonl"], config, tmp_path / "out", exact_partition_size=partition_size)
    finally:
        config.output.validation_fraction = None
    rows = [r for split in run.dataset().values() for r in split.select_columns(["doc_id", "target", "coref_pos"])]
    assert len(rows) == len(clean_run.rows(["doc_id"]))  # every example of the clean run, none merged
    documents = {r["doc_id"] for r in rows}
    assert len(documents) == 25  # as many documents as the clean run: none merged
    splits = run.report["splits"]
    assert splits["train"]["documents"] + splits["validation"]["documents"] == 25
    assert run.report["renamed_ids"]["documents"] == 2
    assert {"1", "1~2", "1~3", "c.jsonl:" + str(_line(changed))} <= documents
    # Each document's examples are the clean run's, under its id here.
    clean = sorted((r["target"], r["coref_pos"]) for r in clean_run.rows(["target", "coref_pos"]))
    assert sorted((r["target"], r["coref_pos"]) for r in rows) == clean


def _line(changed: dict) -> int:
    return int(next(v for v in changed.values() if isinstance(v, str) and v.startswith("c.jsonl:")).split(":")[1])
