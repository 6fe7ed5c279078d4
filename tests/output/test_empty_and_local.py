"""Issue 24: zero examples still give a loadable dataset; the dashboard is local; a full disk names the file."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.data import needs_shared

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dask_prep", "run", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@needs_shared
def test_empty_input_file_gives_a_loadable_empty_dataset(tokenizer_dir, tmp_path, client):
    import datasets

    (tmp_path / "empty.jsonl").write_bytes(b"")
    out = tmp_path / "out"
    args = [str(tmp_path / "empty.jsonl"), "--output-dir", str(out), "--model", str(tokenizer_dir)]
    proc = _cli(*args, "--scheduler", client.scheduler.address, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dataset = datasets.load_from_disk(str(out / "entity_coref_v2_2048"))
    assert len(dataset) == 0
    assert {"doc_id", "input_ids", "labels", "target"} <= set(dataset.column_names)
    said = [line for line in proc.stdout.splitlines() if "no examples were written" in line]
    assert len(said) == 1
    assert json.loads((out / "report.json").read_text())["empty_files"] == ["empty.jsonl"]


@needs_shared
def test_all_rejected_corpus_gives_a_loadable_empty_dataset(shard0, tokenizer_dir, tmp_path, pipeline_runner):
    import datasets
    from support.data import seed_config_with

    reference = datasets.load_from_disk  # the columns of a dataset with examples, for comparison
    config = seed_config_with(tokenizer_dir, input__max_samples=60)
    config.rules["length"].min = 10**9  # no document is long enough
    run = pipeline_runner([shard0], config, tmp_path / "out")
    assert run.report["documents"]["kept"] == 0 and run.report["rejected"]["length"] > 0
    dataset = reference(str(tmp_path / "out" / "entity_coref_v2_2048"))
    assert len(dataset) == 0
    config.rules["length"].min = 800
    full = pipeline_runner([shard0], config, tmp_path / "full")
    assert full.dataset().features == dataset.features


@pytest.mark.cluster
def test_local_cluster_dashboard_listens_on_loopback_only():
    import psutil

    from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client

    assert ClusterOptions().dashboard_address.startswith("127.0.0.1:")
    client = start_client(ClusterOptions(n_workers=1, kiwi_threads=1, dashboard_address="127.0.0.1:0"))
    try:
        port = client.cluster.scheduler.http_server.port
        listening = [
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        assert listening and set(listening) == {"127.0.0.1"}
        assert "127.0.0.1" in client.dashboard_link
    finally:
        stop_client(client)


def test_dashboard_address_flag_reaches_the_cluster_options(monkeypatch, tmp_path):
    from dask_prep.cli import main as cli

    seen = {}

    def fake_start(options, meanwhile=None):
        seen["address"] = options.dashboard_address
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr("dask_prep.pipeline.cluster.start_client", fake_start)
    monkeypatch.setattr("dask_prep.pipeline.graph.Pipeline.check", lambda self, **kwargs: None)
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    cli.main(
        ["run", str(tmp_path / "a.jsonl"), "--output-dir", str(tmp_path / "o"), "--dashboard-address", "0.0.0.0:0"]
    )
    assert seen["address"] == "0.0.0.0:0"
    cli.main(["run", str(tmp_path / "a.jsonl"), "--output-dir", str(tmp_path / "o")])
    assert seen["address"] == "127.0.0.1:8787"


def test_out_of_space_names_the_file_being_written(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dask_prep.io.storage import write_json
    from dask_prep.output.commit import stage_part
    from dask_prep.output.layout import Layout

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write", full)
    table = pa.table({"a": [1]})
    with pytest.raises(OSError, match="No space left on device while writing .*part-00003.parquet") as caught:
        stage_part(Layout(str(tmp_path)), "candidates", 3, [table], table.schema)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(OSError, match="while writing .*stats.json"):
        write_json({}, str(tmp_path / "stats.json"))
