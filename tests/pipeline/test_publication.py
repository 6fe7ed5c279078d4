"""Issue 30: the workers publish the dataset; it equals the client publication row for row.

Every run here publishes on the cluster (`pipeline.publication.publish_dataset`, what
`dask-prep run` does); the reference is today's client publication
(`output.publish.write_dataset`) of the same output parts, in a directory of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.data import REPO, SAMPLE, SAMPLE_TOKENIZER, needs_shared, seed_config_with
from support.runs import run_pipeline

pytestmark = pytest.mark.cluster  # LocalClusters and dask-prep processes

SHARED_SEQ_LEN = 512


def _tables(dataset_dir: str) -> dict:
    """{split: Arrow table} of a saved dataset ('' for a single Dataset)."""
    import datasets

    loaded = datasets.load_from_disk(dataset_dir)
    if isinstance(loaded, datasets.DatasetDict):
        return {name: split.with_format("arrow")[:] for name, split in loaded.items()}
    return {"": loaded.with_format("arrow")[:]}


def _parquet(output_dir: Path):
    import pyarrow.parquet as pq

    return pq.read_table(sorted(glob.glob(str(output_dir / "parquet" / "*.parquet"))))


def _parts_in(output_dir: Path, into: Path) -> list[int]:
    """A fresh output directory holding a copy of `output_dir`'s examples parts."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(output_dir / "_work" / "examples", into / "_work" / "examples")
    return sorted(int(p.name[5:10]) for p in (into / "_work" / "examples").glob("part-*.parquet"))


def client_publication(output_dir: Path, into: Path, seq_len: int, fraction: float | None) -> Path:
    """Today's client publication of the same parts: the reference."""
    from dask_prep.output.layout import Layout
    from dask_prep.output.publish import write_dataset

    write_dataset(Layout(str(into)), _parts_in(output_dir, into), seq_len, validation_fraction=fraction)
    return into


def assert_same_publication(ours: Path, reference: Path, seq_len: int) -> int:
    """The same rows in the same order: the dataset (every split) and the parquet shards."""
    name = f"entity_coref_v2_{seq_len}"
    mine, theirs = _tables(str(ours / name)), _tables(str(reference / name))
    assert list(mine) == list(theirs)
    for split in theirs:
        assert mine[split].schema.equals(theirs[split].schema, check_metadata=False), split
        assert mine[split].num_rows == theirs[split].num_rows, split
        assert mine[split].equals(theirs[split]), split
    assert _parquet(ours).equals(_parquet(reference))
    return sum(t.num_rows for t in mine.values())


@pytest.mark.parametrize("fraction", [None, 0.3])
def test_sample_publication_equals_the_client_publication(client, tmp_path, fraction):
    config = seed_config_with(SAMPLE_TOKENIZER, output__validation_fraction=fraction)
    run = run_pipeline(client, [SAMPLE], config, tmp_path / "run")
    reference = client_publication(tmp_path / "run", tmp_path / "reference", config.tokenize.seq_len, fraction)
    rows = assert_same_publication(tmp_path / "run", reference, config.tokenize.seq_len)
    assert rows == run.report["examples"]["written"] > 0
    assert run.report["seconds"]["dataset"] > 0  # publication is timed like the other stages
    # The split sizes the workers counted are those of the published dataset (card and report).
    tables = _tables(run.report["dataset"])
    assert {k: v["examples"] for k, v in run.report["splits"].items()} == {
        (k or "train"): t.num_rows for k, t in tables.items()
    }
    assert not (tmp_path / "run" / "_work" / "publish").exists()
    assert (Path(run.report["dataset"]) / "README.md").is_file()

    # Another partitioning: the same dataset.
    other = run_pipeline(client, [SAMPLE], config, tmp_path / "other", exact_partition_size=3)
    assert other.report["partitions"] != run.report["partitions"]
    assert_same_publication(tmp_path / "other", reference, config.tokenize.seq_len)


@needs_shared
@pytest.mark.parametrize("fraction", [None, 0.2])
def test_shared_corpus_publication_equals_the_client_publication(client, shard0, tokenizer_dir, tmp_path, fraction):
    config = seed_config_with(
        tokenizer_dir,
        tokenize__seq_len=SHARED_SEQ_LEN,
        input__max_samples=900,
        input__partition_size=60,
        output__validation_fraction=fraction,
    )
    run = run_pipeline(client, [shard0], config, tmp_path / "run")
    reference = client_publication(tmp_path / "run", tmp_path / "reference", SHARED_SEQ_LEN, fraction)
    assert assert_same_publication(tmp_path / "run", reference, SHARED_SEQ_LEN) == run.report["examples"]["written"]


def _publish_on(cluster_workers: int, output_dir: Path, seq_len: int, *, kill_a_worker: bool = False) -> None:
    """Publish `output_dir`'s parts on a LocalCluster of its own (no Kiwi needed); with
    `kill_a_worker`, SIGKILL one worker as soon as the first piece is written."""
    from distributed import Client, LocalCluster

    from dask_prep.output.layout import Layout
    from dask_prep.pipeline.publication import publish_dataset

    indices = sorted(int(p.name[5:10]) for p in (output_dir / "_work" / "examples").glob("part-*.parquet"))
    with (
        LocalCluster(n_workers=cluster_workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as own,
    ):
        killed = []
        if kill_a_worker:
            pids = list(own.run(os.getpid).values())

            def kill_on_first_piece() -> None:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not glob.glob(str(output_dir / "_work/publish/**/*.arrow")):
                    time.sleep(0.01)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

            watcher = threading.Thread(target=kill_on_first_piece, daemon=True)
            watcher.start()
        with own.as_current():
            # Small shards, so that the workers share several.
            publish_dataset(Layout(str(output_dir)), indices, seq_len, shard_bytes=200_000)
        if kill_a_worker:
            watcher.join()
            assert killed


@needs_shared
def test_any_worker_count_and_a_killed_worker_give_the_same_dataset(client, shard0, tokenizer_dir, tmp_path):
    """1 worker, 3 workers, and 2 workers of which one is SIGKILLed while publishing."""
    config = seed_config_with(tokenizer_dir, tokenize__seq_len=SHARED_SEQ_LEN, input__max_samples=600)
    run_pipeline(client, [shard0], config, tmp_path / "run")
    reference = client_publication(tmp_path / "run", tmp_path / "reference", SHARED_SEQ_LEN, None)
    for workers, kill in ((1, False), (3, False), (2, True)):
        again = tmp_path / f"workers-{workers}"
        _parts_in(tmp_path / "run", again)
        _publish_on(workers, again, SHARED_SEQ_LEN, kill_a_worker=kill)
        assert len(list((again / "parquet").glob("*.parquet"))) > 2
        assert_same_publication(again, reference, SHARED_SEQ_LEN)


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "dask_prep", "--quiet", "run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its cluster's processes in a group of their own, ended with it here
    )


@needs_shared
def test_client_sigkilled_while_publishing_then_resume_gives_the_same_dataset(shard0, tokenizer_dir, tmp_path):
    out = tmp_path / "out"
    args = [str(shard0), "--model", str(tokenizer_dir), "--seq-len", str(SHARED_SEQ_LEN), "--max-samples", "600"]
    args += ["--output-dir", str(out), "--n-workers", "2"]
    proc = _cli(args, tmp_path)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if glob.glob(str(out / "_work" / "publish" / "**" / "*.arrow"), recursive=True):
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before its publication could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)  # its orphaned cluster processes
    name = f"entity_coref_v2_{SHARED_SEQ_LEN}"
    import datasets

    with pytest.raises(FileNotFoundError):  # never a loadable half
        datasets.load_from_disk(str(out / name))

    resumed = _cli([*args, "--resume"], tmp_path)
    _, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    reference = client_publication(out, tmp_path / "reference", SHARED_SEQ_LEN, None)
    assert assert_same_publication(out, reference, SHARED_SEQ_LEN) > 0


@needs_shared
def test_seq_len_8_on_a_real_corpus_publishes(shard0, tokenizer_dir, tmp_path):
    """Issue 30's fix on the way: at --seq-len 8 most partitions' first batch gives no example,
    so their parts begin with a row group of 0 rows, which the client publication refused."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    args = [str(shard0), "--model", str(tokenizer_dir), "--seq-len", "8", "--max-samples", "400"]
    proc = _cli([*args, "--output-dir", str(out), "--n-workers", "2", "--partition-size", "50"], tmp_path)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    parts = sorted((out / "_work" / "examples").glob("part-*.parquet"))
    first_groups = [
        pq.ParquetFile(p).metadata.row_group(0).num_rows for p in parts if pq.ParquetFile(p).metadata.num_row_groups
    ]
    assert 0 in first_groups, "no part begins with an empty row group: the case is not covered"
    import datasets

    dataset = datasets.load_from_disk(str(out / "entity_coref_v2_8"))
    assert len(dataset) == sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
