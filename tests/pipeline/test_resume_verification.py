"""Issue 24: --resume reuses a finished part only if it is what its partition's stats recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.data import needs_shared, seed_config_with


def _rows(run_dir: Path) -> list[tuple]:
    import datasets

    dataset = datasets.load_from_disk(str(run_dir / "entity_coref_v2_2048"))
    return [(r["doc_id"], r["coref_pos"], r["target"], tuple(r["input_ids"])) for r in dataset]


def _interrupted(out: Path) -> None:
    """Make a finished run look interrupted before its dataset was written."""
    (out / "report.json").unlink()
    (out / "report.html").unlink(missing_ok=True)
    shutil.rmtree(out / "entity_coref_v2_2048")


@needs_shared
def test_swapped_and_truncated_parts_are_recomputed_on_resume(client, shard0, tokenizer_dir, tmp_path, pipeline_runner):
    from dask_prep.pipeline.graph import Pipeline

    config = seed_config_with(tokenizer_dir, input__max_samples=200, input__dedup=False)
    clean = pipeline_runner([shard0], config, tmp_path / "clean", exact_partition_size=20)
    out = tmp_path / "resumed"
    shutil.copytree(clean.output_dir, out)
    _interrupted(out)
    work = out / "_work"
    # Another partition's part copied over partition 1's; partition 2's cut in half; partition
    # 3's examples cut in half; partition 4's decisions swapped with partition 6's.
    shutil.copy(work / "candidates" / "part-00005.parquet", work / "candidates" / "part-00001.parquet")
    for path in (work / "candidates" / "part-00002.parquet", work / "examples" / "part-00003.parquet"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    shutil.copy(out / "decisions" / "part-00006.parquet", out / "decisions" / "part-00004.parquet")

    with client.as_current():
        report = Pipeline([str(shard0)], config, str(out)).run(resume=True)
    replaced = {(r["stage"], r["partition"]) for r in report["partitions"]["replaced_on_resume"]}
    assert replaced == {("analyse", 1), ("analyse", 2), ("analyse", 4), ("tokenize", 3)}
    assert report["partitions"]["analysis_reused"] == report["partitions"]["total"] - 3
    assert report["documents"] == clean.report["documents"]
    assert report["examples"] == clean.report["examples"]
    assert _rows(out) == _rows(clean.output_dir)
