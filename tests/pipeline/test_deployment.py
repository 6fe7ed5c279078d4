"""A real deployment: Dask's own CLIs on 127.0.0.1 and `dask-prep run --scheduler`.

`dask scheduler` and two `dask worker` processes are started as a user would start them
on several hosts. While `dask-prep run --scheduler` is running, a third `dask worker`
joins: it must get Kiwi from the plugin the run registered (no lazily built fallback)
and compute partitions. The dataset must equal the one a LocalCluster run writes.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support.data import needs_shared
from support.processes import console_script, dask_worker_args, start_dask_scheduler, wait_for

PLUGIN_NAME = "dask-prep-kiwi"
# 60 partitions over two shards: the run must outlast a late worker's start (~2 s) and Kiwi
# build (~5 s). With 1,000 documents, once stage 2 no longer loaded transformers on every
# worker, the run sometimes ended before the late worker was ready; with progressive
# analysis it ends sooner still, so these runs analyse every candidate whole (--full-analysis).
MAX_SAMPLES = 3000
PARTITION_SIZE = 50


def _rows(path: str):
    import datasets

    dataset = datasets.load_from_disk(path)
    return dataset.with_format("arrow")[:]  # in the dataset's (sorted) order


@pytest.mark.slow  # Dask's CLIs and 3,000 documents, then a LocalCluster run of them
@needs_shared
def test_dask_cli_deployment_with_late_worker(client, shard0, tokenizer_dir, seed_config, tmp_path, spawn):
    from distributed import Client

    from dask_prep.pipeline.graph import Pipeline

    def kiwi_state(dask_worker) -> dict:
        # Runs on a worker (a nested function travels by value: tests/ is not importable there).
        from dask_prep.analysis import kiwi as kiwi_setup

        plugin = dask_worker.plugins.get(kiwi_setup.PLUGIN_NAME)
        has_kiwi = getattr(plugin, "kiwi", None) is not None
        rayon_threads = os.environ.get("RAYON_NUM_THREADS")
        return {"plugin": plugin is not None, "kiwi": has_kiwi, "builds": kiwi_setup.builds, "rayon": rayon_threads}

    inputs = [str(shard0), str(shard0.with_name("00001.jsonl.zst"))]
    scheduler_file = tmp_path / "scheduler.json"
    scheduler, address = start_dask_scheduler(spawn, scheduler_file, "scheduler.log")
    assert address.startswith("tcp://127.0.0.1:")
    # Each worker runs in a directory of its own, as on another host: paths must be absolute.
    workers = [spawn(*dask_worker_args(address, f"w{i}", tmp_path)) for i in (1, 2)]

    with Client(address, timeout="60s", set_as_default=False) as monitor:
        monitor.wait_for_workers(2, timeout=120)
        output = tmp_path / "distributed"
        run = spawn(
            [
                console_script("dask-prep"),
                "run",
                *inputs,
                "--model",
                str(tokenizer_dir),
                "--max-samples",
                str(MAX_SAMPLES),
                "--partition-size",
                str(PARTITION_SIZE),
                "--scheduler",
                address,
                "--output-dir",
                str(output),
                "--full-analysis",
                "--quiet",
            ],
            "dask-prep.log",
        )
        # Mid-run: the run has registered the plugin and started writing its output.
        wait_for(
            lambda: (
                (output / "manifest.json").exists()
                and PLUGIN_NAME in monitor.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
            ),
            300,
            "the run to start",
            [run, scheduler, *workers],
        )
        assert not (output / "report.json").exists(), "the run ended before the third worker could join"
        late = spawn(*dask_worker_args(address, "late", tmp_path))
        try:
            returncode = run.wait(timeout=900)
        except subprocess.TimeoutExpired:
            pytest.fail("dask-prep run --scheduler did not finish in 900 s")
        log = (tmp_path / "dask-prep.log").read_text(errors="replace")
        assert returncode == 0, log[-3000:]
        assert late.poll() is None, "the late worker exited"

        by_name = {info["name"]: addr for addr, info in monitor.scheduler_info(n_workers=-1)["workers"].items()}
        assert set(by_name) == {"w1", "w2", "late"}
        late_address = by_name["late"]
        # The late worker got its Kiwi from the plugin, and built no other.
        state = monitor.run(kiwi_state, workers=[late_address])[late_address]
        # ... and sized the tokenizer's thread pool to its one thread (`dask worker --nthreads 1`).
        rayon_threads = os.environ.get("RAYON_NUM_THREADS", "1")
        assert state == {"plugin": True, "kiwi": True, "builds": 1, "rayon": rayon_threads}

    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    log_entries = report["partition_log"]
    assert len(log_entries) == report["partitions"]["total"] == MAX_SAMPLES // PARTITION_SIZE
    computed_by = {e["analysed_by"] for e in log_entries} | {e["tokenized_by"] for e in log_entries}
    assert computed_by <= set(by_name.values())
    assert late_address in computed_by, f"the late worker computed no partition: {computed_by}"
    assert (output / "report.html").is_file()

    # The same run on a LocalCluster writes the same dataset.
    config = seed_config
    config.input.max_samples = MAX_SAMPLES
    config.input.partition_size = PARTITION_SIZE
    config.analysis.progressive = False
    with client.as_current():
        local = Pipeline(inputs, config, str(tmp_path / "local")).run()
    local_report = json.loads((tmp_path / "local" / "report.json").read_text(encoding="utf-8"))
    for key in ("documents", "rejected", "examples", "entities"):
        assert report[key] == local_report[key], key
    distributed_rows, local_rows = _rows(report["dataset"]), _rows(local["dataset"])
    assert distributed_rows.num_rows == report["examples"]["written"] > 0
    assert distributed_rows.column("doc_id").to_pylist() == local_rows.column("doc_id").to_pylist()
    assert distributed_rows.equals(local_rows)


@pytest.mark.cluster
def test_local_cluster_from_start_client_settings_reach_the_workers(monkeypatch):
    """The LocalCluster dask-prep starts: event loops tick every 500 ms (not 20), no profiler,
    the tokenizer's thread pool sized to the worker's cores (its Kiwi's 2 threads), and
    glibc's own malloc settings instead of distributed's `MALLOC_TRIM_THRESHOLD_=65536`.

    The settings must reach the worker processes (through their nannies), not only this one.
    """
    import dask

    from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client

    # Nannies of other clusters in this process (the fixtures') leave distributed's value in
    # os.environ, where our workers would inherit it: start from an environment without one.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    own_tick = dask.config.get("distributed.admin.tick.interval")
    client = start_client(ClusterOptions(n_workers=1, kiwi_threads=2, dashboard_address=":0"))
    try:
        worker_state = client.run(
            lambda dask_worker: (
                dask_worker._tick_interval,
                set(dask_worker.periodic_callbacks),
                os.environ.get("RAYON_NUM_THREADS"),
                os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            )
        )
        ((tick, callbacks, rayon_threads, malloc_trim),) = worker_state.values()
        scheduler_tick = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval)
    finally:
        stop_client(client)
    assert malloc_trim is None and "MALLOC_TRIM_THRESHOLD_" not in os.environ
    assert rayon_threads == os.environ.get("RAYON_NUM_THREADS", "2")  # a value the user set is kept
    assert tick == 0.5 and scheduler_tick == 0.5
    assert "profile" not in callbacks and "tick" in callbacks  # the loop is still watched, less often
    # Only the cluster's processes: this process keeps the user's dask config.
    assert dask.config.get("distributed.admin.tick.interval") == own_tick


@needs_shared
def test_single_threaded_kiwi_workers_fork_from_one_warm_kiwi(client, shard0, tokenizer_dir, tmp_path):
    """`--n-workers N` with 1-thread Kiwis: the workers inherit one Kiwi built before they
    were forked (none builds its own), a second cluster in the same process starts without
    building again, and the dataset equals that of workers that built their own (`client`)."""
    from support.data import seed_config_with

    from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client
    from dask_prep.pipeline.graph import Pipeline

    def kiwi_origin(dask_worker) -> tuple:
        from dask_prep.analysis import kiwi as kiwi_setup

        plugin = dask_worker.plugins[kiwi_setup.PLUGIN_NAME]
        inherited = plugin.kiwi is not None and plugin.kiwi is kiwi_setup._local_kiwi.get((1, None))
        return kiwi_setup.builds, inherited, os.getppid(), os.environ.get("PYTHONHASHSEED")

    config = seed_config_with(tokenizer_dir, input__max_samples=400)
    rows = {}
    for attempt in ("first", "second"):
        forked = start_client(ClusterOptions(n_workers=2, kiwi_threads=1, dashboard_address=":0"))
        try:
            origins = list(forked.run(kiwi_origin).values())
            if attempt == "first":
                with forked.as_current():
                    rows["forked"] = _rows(Pipeline([str(shard0)], config, str(tmp_path / "forked")).run()["dataset"])
        finally:
            stop_client(forked)
        assert len(origins) == 2
        assert all(builds == 0 and inherited for builds, inherited, _, _ in origins), origins
        assert len({parent for _, _, parent, _ in origins}) == 1 and origins[0][2] != os.getpid()  # the forkserver
        assert {seed for *_, seed in origins} == {"6640"}  # distributed's hash seed, as when spawned
    with client.as_current():
        rows["spawned"] = _rows(Pipeline([str(shard0)], config, str(tmp_path / "spawned")).run()["dataset"])
    assert rows["forked"].num_rows > 0
    assert rows["forked"].equals(rows["spawned"])
