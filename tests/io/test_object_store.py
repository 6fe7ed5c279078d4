"""Issue 23: inputs and outputs on an object store, tested on a real local S3 server.

`dask-prep run s3://…/*.jsonl.zst --output-dir s3://…` runs as a user would run it (its own
LocalCluster, the standard AWS_* variables); the dataset it writes on the store must equal
a local run's row for row, resume after an interruption, refuse a second run into the same
prefix, and never fall back to a local directory named `s3:`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.data import needs_shared, seed_config_with
from support.runs import interrupt_after
from support.s3_server import environment, s3_server

REPO = Path(__file__).resolve().parents[2]
SEQ_LEN = 512
MAX_SAMPLES = 1200
PARTITION_SIZE = 40  # 30 partitions: an interruption finds some finished and some not


@pytest.fixture(scope="module")
def s3():
    import fsspec

    saved_conf = {k: dict(v) for k, v in fsspec.config.conf.items()}
    with s3_server() as server, environment(server.env):
        fsspec.AbstractFileSystem.clear_instance_cache()
        yield server
    fsspec.config.conf.clear()
    fsspec.config.conf.update(saved_conf)
    fsspec.AbstractFileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def corpus_url(s3, shard0) -> str:
    bucket = s3.bucket("corpus")
    s3.fs().put_file(str(shard0), f"{bucket}/hplt/ko/{shard0.name}")
    return f"s3://{bucket}/hplt/ko/*.jsonl.zst"


def _cli(
    args: list[str], env: dict[str, str], cwd: Path, *, verbose: bool = False, unset: tuple[str, ...] = ()
) -> subprocess.Popen:
    environ = {**os.environ, **env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in unset:
        environ.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "dask_prep", *(["--verbose"] if verbose else []), "run", *args],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_args(inputs: str, output: str, tokenizer_dir: Path) -> list[str]:
    return [
        inputs,
        "--output-dir",
        output,
        "--model",
        str(tokenizer_dir),
        "--seq-len",
        str(SEQ_LEN),
        "--max-samples",
        str(MAX_SAMPLES),
        "--partition-size",
        str(PARTITION_SIZE),
        "--n-workers",
        "2",
        "--quiet",
    ]


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _store_rows(url: str, storage_options: dict):
    import datasets

    return datasets.load_from_disk(url, storage_options=storage_options).with_format("arrow")[:]


@pytest.fixture(scope="module")
def local_run(client, shard0, tokenizer_dir, tmp_path_factory):
    """The same corpus and options, run on local files: what the store's dataset must equal."""
    from dask_prep.pipeline.graph import Pipeline

    config = seed_config_with(
        tokenizer_dir,
        tokenize__seq_len=SEQ_LEN,
        input__max_samples=MAX_SAMPLES,
        input__partition_size=PARTITION_SIZE,
    )
    out = tmp_path_factory.mktemp("local_run")
    with client.as_current():
        report = Pipeline([str(shard0)], config, str(out)).run()
    import datasets

    return report, datasets.load_from_disk(report["dataset"]).with_format("arrow")[:]


@pytest.mark.slow  # a local run and dask-prep runs on S3
@needs_shared
def test_s3_run_equals_local_run_and_publishes_everything_on_the_store(
    s3, corpus_url, local_run, tokenizer_dir, tmp_path
):
    import datasets

    bucket = s3.bucket("out")
    output = f"s3://{bucket}/runs/full"
    proc = _cli(_run_args(corpus_url, output, tokenizer_dir), s3.env, tmp_path)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"dataset: {output}/entity_coref_v2_{SEQ_LEN}" in stdout
    assert list(tmp_path.iterdir()) == [], "the run wrote into its working directory"

    fs = s3.fs()
    names = {p.split("/runs/full/", 1)[1] for p in fs.find(f"{bucket}/runs/full")}
    for expected in ("report.json", "report.html", "manifest.json", f"entity_coref_v2_{SEQ_LEN}/state.json"):
        assert expected in names, sorted(names)
    assert any(n.startswith("decisions/part-") for n in names)
    assert ".dask-prep.lock" not in names  # released at the end
    assert not any(n.endswith(".tmp") for n in names)

    report = json.loads(fs.cat_file(f"{bucket}/runs/full/report.json"))
    local_report, local_rows = local_run
    for key in ("documents", "rejected", "examples", "entities"):
        assert report[key] == local_report[key], key
    manifest = json.loads(fs.cat_file(f"{bucket}/runs/full/manifest.json"))
    assert manifest["inputs"][0]["etag"] and manifest["inputs"][0]["size"] > 0  # the inputs-changed check
    html = fs.cat_file(f"{bucket}/runs/full/report.html").decode()
    assert "could not be drawn" not in html and html.count("data:image/png") >= 4  # plots from the store's parts

    rows = _store_rows(f"{output}/entity_coref_v2_{SEQ_LEN}", s3.storage_options)
    assert rows.num_rows == report["examples"]["written"] > 0
    assert rows.column("doc_id").to_pylist() == local_rows.column("doc_id").to_pylist()
    assert rows.equals(local_rows)

    # The parquet shards: the same rows in the same order, for streaming readers.
    streamed = datasets.load_dataset(
        "parquet",
        data_files=f"{output}/parquet/*.parquet",
        split="train",
        streaming=True,
        storage_options=s3.storage_options,
    )
    streamed_rows = list(streamed)
    assert [r["doc_id"] for r in streamed_rows] == rows.column("doc_id").to_pylist()
    assert [r["input_ids"] for r in streamed_rows] == rows.column("input_ids").to_pylist()
    assert [r["target"] for r in streamed_rows] == rows.column("target").to_pylist()

    # A second run into the finished prefix without --overwrite: exit 2, nothing deleted.
    before = {p: fs.info(p)["ETag"] for p in fs.find(f"{bucket}/runs/full")}
    proc = _cli(_run_args(corpus_url, output, tokenizer_dir), s3.env, tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "not empty" in _one_line(stderr)
    assert {p: fs.info(p)["ETag"] for p in fs.find(f"{bucket}/runs/full")} == before


@pytest.mark.cluster
@needs_shared
def test_storage_options_reach_the_client_and_every_worker(s3, corpus_url, tokenizer_dir, tmp_path):
    """No AWS_* variable anywhere: endpoint and credentials only in --storage-options."""
    bucket = s3.bucket("opts")
    output = f"s3://{bucket}/with-options"
    args = [corpus_url, "--output-dir", output, "--model", str(tokenizer_dir), "--max-samples", "200"]
    args += ["--n-workers", "2", "--quiet", "--storage-options", json.dumps(s3.storage_options)]
    unset = tuple(name for name in os.environ if name.startswith("AWS_"))
    proc = _cli(args, {}, tmp_path, unset=unset)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads(s3.fs().cat_file(f"{bucket}/with-options/report.json"))
    assert report["documents"]["read"] == 200
    # Worker processes (which have no AWS_* variables either) read the input and wrote the parts.
    assert None not in {e["analysed_by"] for e in report["partition_log"]}

    proc = _cli(args[:-2], {}, tmp_path, unset=unset)  # without them: no endpoint, no credentials
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stderr
    _one_line(stderr)


def _finished(fs, stats_prefix: str) -> set[int]:
    fs.invalidate_cache()
    if not fs.exists(stats_prefix):
        return set()
    return {int(p.rsplit("-", 1)[1].split(".")[0]) for p in fs.glob(f"{stats_prefix}/analyse-*.json")}


@pytest.mark.slow  # a local run and dask-prep runs on S3
@needs_shared
def test_interrupted_s3_run_resumes_to_the_same_dataset(s3, corpus_url, local_run, tokenizer_dir, tmp_path):
    bucket = s3.bucket("resume")
    output = f"s3://{bucket}/interrupted"
    stats_prefix = f"{bucket}/interrupted/_work/stats"
    fs = s3.fs()
    args = _run_args(corpus_url, output, tokenizer_dir)
    interrupt_after(_cli(args, s3.env, tmp_path), lambda: _finished(fs, stats_prefix))
    finished = _finished(fs, stats_prefix)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/interrupted/entity_coref_v2_{SEQ_LEN}")  # no dataset yet
    assert not fs.exists(f"{bucket}/interrupted/report.json")
    assert not fs.exists(f"{bucket}/interrupted/.dask-prep.lock")  # released on the way out

    proc = _cli([*args, "--resume"], s3.env, tmp_path)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads(fs.cat_file(f"{bucket}/interrupted/report.json"))
    partitions = report["partitions"]
    assert partitions["total"] == MAX_SAMPLES // PARTITION_SIZE > len(finished)
    assert partitions["analysis_reused"] == len(finished) > 0
    reused = {e["partition"] for e in report["partition_log"] if e["analysis_reused"]}
    assert reused == finished  # every finished part reused, none computed again
    rows = _store_rows(f"{output}/entity_coref_v2_{SEQ_LEN}", s3.storage_options)
    assert rows.equals(local_run[1])


@pytest.mark.cluster
@needs_shared
def test_second_run_into_a_held_prefix_exits_2_and_deletes_nothing(s3, corpus_url, tokenizer_dir, tmp_path):
    from dask_prep.io.store_lock import StoreLock
    from dask_prep.output.layout import LOCK_FILE

    bucket = s3.bucket("busy")
    fs = s3.fs()
    fs.pipe_file(f"{bucket}/busy/earlier.txt", b"a first run's file")
    lock = StoreLock(f"s3://{bucket}/busy/{LOCK_FILE}")  # a live run holding the prefix
    lock.acquire()
    try:
        lock_content = fs.cat_file(f"{bucket}/busy/{LOCK_FILE}")
        for extra in ([], ["--overwrite"]):
            proc = _cli([*_run_args(corpus_url, f"s3://{bucket}/busy", tokenizer_dir), *extra], s3.env, tmp_path)
            _, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 2, stderr
            line = _one_line(stderr)
            assert "in use by another dask-prep run" in line and f"pid {os.getpid()}" in line
            assert sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{bucket}/busy")) == [LOCK_FILE, "earlier.txt"]
            assert fs.cat_file(f"{bucket}/busy/{LOCK_FILE}") == lock_content
    finally:
        lock.release()
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/busy/{LOCK_FILE}")


# ---- errors a user can act on ------------------------------------------------------------

BLOCK_S3FS = """
import sys

class _NoS3fs:
    def find_spec(self, name, path=None, target=None):
        if name == "s3fs" or name.startswith("s3fs."):
            raise ModuleNotFoundError("No module named 's3fs'", name="s3fs")
        return None

sys.meta_path.insert(0, _NoS3fs())
"""


@pytest.mark.cluster
def test_s3_output_without_the_backend_is_one_line_and_writes_nothing(tmp_path, shard0, tokenizer_dir):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCK_S3FS, encoding="utf-8")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(shim), str(REPO), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run(
        [sys.executable, "-c", "import s3fs"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert probe.returncode != 0, "the shim did not hide s3fs"
    for inputs, output in (
        (str(shard0), "s3://my-bucket/out"),  # the silent local write of the issue
        ("s3://my-bucket/corpus/*.jsonl.zst", str(tmp_path / "local_out")),
    ):
        proc = _cli(_run_args(inputs, output, tokenizer_dir), env, cwd)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        line = _one_line(stderr)
        assert "s3fs" in line and 'pip install "dask-prep[s3]"' in line, line
        assert stdout == ""
        assert list(cwd.iterdir()) == [], "something was written locally"
        assert not (tmp_path / "local_out").exists()


@pytest.mark.cluster
def test_missing_bucket_and_unreachable_store_are_one_line(s3, shard0, tokenizer_dir, tmp_path):
    from support.s3_server import CREDENTIALS

    proc = _cli(_run_args(str(shard0), "s3://no-such-bucket-23/out", tokenizer_dir), s3.env, tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "no-such-bucket-23" in _one_line(stderr) and "does not exist" in stderr

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}", "AWS_MAX_ATTEMPTS": "1"}
    proc = _cli(_run_args("s3://corpus/x/*.jsonl.zst", str(tmp_path / "out"), tokenizer_dir), env, tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "connect" in _one_line(stderr).lower()
    proc = _cli(
        _run_args("s3://corpus/x/*.jsonl.zst", str(tmp_path / "out"), tokenizer_dir), env, tmp_path, verbose=True
    )
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "Traceback" in stderr  # --verbose shows where it failed


# ---- plain functions on the store (no cluster) --------------------------------------------


def test_a_part_that_fails_while_written_leaves_no_object(s3):
    """One request under the final name, at the commit: an error while the part is made publishes
    nothing (fsspec's buffered writer would have committed what it had on close)."""
    import pyarrow as pa

    from dask_prep.output.commit import commit_partition, stage_part
    from dask_prep.output.layout import Layout

    bucket = s3.bucket("parts")
    layout = Layout(f"s3://{bucket}/p")
    schema = pa.schema([pa.field("x", pa.int64())])

    def batches():
        yield pa.table({"x": [1, 2, 3]})
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        stage_part(layout, "candidates", 0, batches(), schema)
    assert not s3.fs().exists(f"{bucket}/p/_work/candidates/part-00000.parquet")
    staged = stage_part(layout, "candidates", 0, [pa.table({"x": [1]})], schema)
    assert staged.rows == 1
    assert commit_partition(layout, "analyse", 0, [staged], {}) is None
    assert s3.fs().exists(f"{bucket}/p/_work/candidates/part-00000.parquet")


def test_store_lock_is_exclusive_renewed_and_stale_after_its_lease(s3):
    from dask_prep.io.store_lock import LockHeldError, StoreLock

    bucket = s3.bucket("lock")
    url = f"s3://{bucket}/out/.dask-prep.lock"
    first = StoreLock(url, lease=2.0)
    first.acquire()
    assert first.conditional  # moto, like S3, refuses If-None-Match: * on an existing key
    second = StoreLock(url, lease=2.0)
    with pytest.raises(LockHeldError, match=f"pid {os.getpid()}"):
        second.acquire()
    time.sleep(3.5)  # renewed every lease/4: still fresh after more than a lease
    with pytest.raises(LockHeldError):
        StoreLock(url, lease=2.0).check_free()
    first.confirm()

    # A holder that stopped renewing (a killed run on another host) is stale after the lease.
    first._stop.set()
    first._thread.join()
    content = json.loads(s3.fs().cat_file(f"{bucket}/out/.dask-prep.lock"))
    s3.fs().pipe_file(f"{bucket}/out/.dask-prep.lock", json.dumps({**content, "host": "elsewhere"}).encode())
    time.sleep(3.5)
    third = StoreLock(url, lease=2.0)
    third.acquire()  # taken over
    try:
        with pytest.raises(LockHeldError, match="no longer held"):
            first.confirm()  # the old holder learns it before publishing
    finally:
        third.release()
        first.release()
    assert not s3.fs().exists(f"{bucket}/out/.dask-prep.lock")


def test_overwrite_is_refused_on_a_store_without_conditional_writes(s3, monkeypatch):
    """A store that ignores If-None-Match cannot keep a second run out: --overwrite is refused."""
    from dask_prep.io import storage
    from dask_prep.output.layout import OutputDirError, hold_output_dir

    class IgnoresConditions:
        """An S3-compatible store that ignores If-None-Match and If-Match."""

        def __init__(self, fs):
            self._fs = fs

        def __getattr__(self, name):
            return getattr(self._fs, name)

        def pipe_file(self, path, data, mode="overwrite", **kwargs):
            kwargs.pop("IfMatch", None)
            return self._fs.pipe_file(path, data, **kwargs)

    real = storage.filesystem

    def filesystem(path):
        fs, inner = real(path)
        return IgnoresConditions(fs), inner

    monkeypatch.setattr(storage, "filesystem", filesystem)
    bucket = s3.bucket("nocond")
    with pytest.raises(OutputDirError, match="cannot do conditional"):
        with hold_output_dir(f"s3://{bucket}/out", overwrite=True):
            pass
    with pytest.warns(UserWarning, match="cannot do conditional writes"):
        with hold_output_dir(f"s3://{bucket}/out") as lock:
            assert lock is not None and not lock.conditional


def test_resume_refuses_inputs_whose_etag_changed_on_the_store(s3, tmp_path):
    """The inputs-changed check uses what the store offers: size, LastModified and ETag."""
    from dask_prep.config import preset
    from dask_prep.io.reading import resolve_inputs
    from dask_prep.output.layout import Layout, OutputDirError, check_resumable, write_manifest

    bucket = s3.bucket("changed")
    fs = s3.fs()
    fs.pipe_file(f"{bucket}/in/a.jsonl", b'{"text": "one"}\n')
    config = preset("seed-v2")
    layout = Layout(f"s3://{bucket}/out")
    files = resolve_inputs([f"s3://{bucket}/in/*.jsonl"])
    write_manifest(layout, files, config, partition_size_used=1)
    check_resumable(layout, resolve_inputs([f"s3://{bucket}/in/*.jsonl"]), config)  # unchanged: fine
    fs.pipe_file(f"{bucket}/in/a.jsonl", b'{"text": "two"}\n')  # same size, new content
    with pytest.raises(OutputDirError, match="inputs changed"):
        check_resumable(layout, resolve_inputs([f"s3://{bucket}/in/*.jsonl"]), config)


def test_urls_stay_urls_and_local_paths_become_absolute(tmp_path, monkeypatch):
    from dask_prep.io import storage

    monkeypatch.chdir(tmp_path)
    assert storage.normalize("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert storage.normalize("file:///data/out") == "/data/out"
    assert storage.normalize("out") == str(tmp_path / "out")
    assert [storage.is_remote(u) for u in ("s3://b/x", "gs://b", "hf://datasets/a/b", "file:///x", "/x", "x")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert storage.install_hint("s3") == 'pip install "dask-prep[s3]" (or pip install s3fs)'
    assert storage.install_hint("gs") == "pip install gcsfs"
    with pytest.raises(storage.StorageError, match="no fsspec backend knows the protocol nosuch://"):
        storage.filesystem("nosuch://bucket/x")
