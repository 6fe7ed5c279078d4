"""Issue 23: a cluster whose machines share nothing but an object store.

The scheduler and two workers each run in a network namespace of their own, joined by a
bridge and veth pairs this test makes (addresses 10.200.K.0/28 on those links only), with
a private mount namespace that hides the test data (../shared) and the test's own
directories: they have their own working directories and no common path. The only thing
all of them reach is the S3 server (moto) on the bridge. `dask-prep run --scheduler` from
the host reads the corpus from S3 and writes the dataset to S3, which must equal the one a
LocalCluster run writes from local files. Needs root and `ip netns`; skips, saying why,
where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.data import SHARED, needs_shared, seed_config_with
from support.s3_server import environment, s3_server

SEQ_LEN = 512
MAX_SAMPLES = 400  # one shard's first records: a small run, the point is where it runs
PARTITION_SIZE = 50
SCHEDULER_PORT = 8786  # inside the scheduler's own namespace: no other process can hold it


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


class Network:
    """A bridge on the host and one namespace per machine, each on a veth pair to the bridge."""

    def __init__(self, machines: list[str]) -> None:
        self.tag = f"dp{os.getpid() % 10000}"
        subnet = 20 + os.getpid() % 200
        self.prefix = f"10.200.{subnet}"
        self.bridge = f"{self.tag}b"
        self.host_address = f"{self.prefix}.1"
        self.machines = {name: (f"{self.tag}{name}", f"{self.prefix}.{i + 2}") for i, name in enumerate(machines)}
        self.made: list[tuple[str, str]] = []  # what to delete, in reverse order

    def _run(self, *args: str) -> None:
        result = _sh(*args)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")

    def create(self) -> None:
        self._run("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        self._run("ip", "addr", "add", f"{self.host_address}/28", "dev", self.bridge)
        self._run("ip", "link", "set", self.bridge, "up")
        for name, (netns, address) in self.machines.items():
            host_end, ns_end = f"{self.tag}{name}h", f"{self.tag}{name}n"
            self._run("ip", "netns", "add", netns)
            self.made.append(("netns", netns))
            self._run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            self.made.append(("link", host_end))
            self._run("ip", "link", "set", host_end, "master", self.bridge)
            self._run("ip", "link", "set", host_end, "up")
            self._run("ip", "link", "set", ns_end, "netns", netns)
            self._run("ip", "netns", "exec", netns, "ip", "addr", "add", f"{address}/28", "dev", ns_end)
            self._run("ip", "netns", "exec", netns, "ip", "link", "set", ns_end, "up")
            self._run("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")

    def destroy(self) -> None:
        for kind, name in reversed(self.made):
            if kind == "netns":
                _sh("ip", "netns", "del", name)
            else:
                _sh("ip", "link", "del", name)
        self.made.clear()


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root; this test did not run")
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("`ip` (iproute2) or `unshare` is not installed; network namespaces cannot be made")
    net = Network(["sched", "w1", "w2"])
    try:
        try:
            net.create()
        except RuntimeError as exc:
            pytest.skip(f"network namespaces cannot be made here: {exc}")
        yield net
    finally:
        net.destroy()


def _in_machine(netns: str, hidden: list[Path], command: list[str]) -> list[str]:
    """`command` in `netns`, in a private mount namespace where `hidden` are empty tmpfs."""
    mounts = " && ".join(f"mount -t tmpfs dask-prep-hidden {p}" for p in hidden)
    script = f'{mounts} && exec "$@"' if mounts else 'exec "$@"'
    return ["ip", "netns", "exec", netns, "unshare", "--mount", "sh", "-c", script, "sh", *command]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in reversed(procs):
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.mark.slow  # a cluster in network namespaces, a LocalCluster run beside it
@needs_shared
def test_scheduler_and_workers_in_their_own_namespaces_share_only_s3(network, client, shard0, tokenizer_dir, tmp_path):
    import datasets

    from dask_prep.pipeline.graph import Pipeline

    # The machines' directories are outside tmp_path, which (with ../shared) they cannot see.
    homes = Path(tempfile.mkdtemp(prefix="dask-prep-machines-"))
    hidden = [p for p in (SHARED.resolve(), tmp_path.resolve()) if p.is_dir()]
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        with s3_server(network.host_address) as s3:
            env = {**os.environ, **s3.env, "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1"}
            env.pop("DASK_SCHEDULER_ADDRESS", None)
            fs = s3.fs()
            corpus, out = s3.bucket("corpus"), s3.bucket("out")
            fs.put_file(str(shard0), f"{corpus}/hplt/{shard0.name}")

            def start(name: str, command: list[str]) -> subprocess.Popen:
                home = homes / name
                home.mkdir()
                log = open(tmp_path / f"{name}.log", "wb")
                logs.append(log)
                netns = network.machines[name][0]
                proc = subprocess.Popen(
                    _in_machine(netns, hidden, command),
                    cwd=home,
                    env={**env, "HOME": str(home), "TMPDIR": str(home)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                procs.append(proc)
                return proc

            scheduler_host = network.machines["sched"][1]
            address = f"tcp://{scheduler_host}:{SCHEDULER_PORT}"
            start(
                "sched",
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    scheduler_host,
                    "--port",
                    str(SCHEDULER_PORT),
                    "--dashboard-address",
                    f"{scheduler_host}:8787",
                ],
            )
            for name in ("w1", "w2"):
                start(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--host",
                        network.machines[name][1],
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--name",
                        name,
                        "--memory-limit",
                        "2GiB",
                        "--no-dashboard",
                        "--local-directory",
                        str(homes / name),
                        "--death-timeout",
                        "60",
                    ],
                )
            from distributed import Client

            with Client(address, timeout="60s", set_as_default=False) as monitor:
                monitor.wait_for_workers(2, timeout=180)
                # Each worker's view: its own address, no ../shared, no common directory.
                views = monitor.run(lambda: (os.getcwd(), sorted(os.listdir(str(SHARED))) if SHARED.is_dir() else []))
            assert sorted(cwd for cwd, _ in views.values()) == [str(homes / "w1"), str(homes / "w2")]
            assert all(listing == [] for _, listing in views.values()), views
            assert {a.split("://")[1].rsplit(":", 1)[0] for a in views} == {
                network.machines["w1"][1],
                network.machines["w2"][1],
            }

            output = f"s3://{out}/shared-nothing"
            client_home = homes / "client"
            client_home.mkdir()
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dask_prep",
                    "run",
                    f"s3://{corpus}/hplt/*.jsonl.zst",
                    "--output-dir",
                    output,
                    "--scheduler",
                    address,
                    "--model",
                    str(tokenizer_dir),
                    "--seq-len",
                    str(SEQ_LEN),
                    "--max-samples",
                    str(MAX_SAMPLES),
                    "--partition-size",
                    str(PARTITION_SIZE),
                    "--quiet",
                ],
                cwd=client_home,
                env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert run.returncode == 0, run.stderr[-3000:]
            assert list(client_home.iterdir()) == []  # nothing written beside the client either
            report = json.loads(fs.cat_file(f"{out}/shared-nothing/report.json"))
            workers = {e["analysed_by"] for e in report["partition_log"]} | {
                e["tokenized_by"] for e in report["partition_log"]
            }
            assert {w.split("://")[1].rsplit(":", 1)[0] for w in workers} == {
                network.machines["w1"][1],
                network.machines["w2"][1],
            }
            with environment(s3.env):
                rows = datasets.load_from_disk(
                    f"{output}/entity_coref_v2_{SEQ_LEN}", storage_options=s3.storage_options
                ).with_format("arrow")[:]
    finally:
        _stop(procs)
        for log in logs:
            log.close()
        shutil.rmtree(homes, ignore_errors=True)

    # The same corpus and options on the test's LocalCluster, from local files.
    config = seed_config_with(
        tokenizer_dir,
        tokenize__seq_len=SEQ_LEN,
        input__max_samples=MAX_SAMPLES,
        input__partition_size=PARTITION_SIZE,
    )
    with client.as_current():
        local = Pipeline([str(shard0)], config, str(tmp_path / "local")).run()
    local_rows = datasets.load_from_disk(local["dataset"]).with_format("arrow")[:]
    assert rows.num_rows == report["examples"]["written"] > 0
    assert rows.column("doc_id").to_pylist() == local_rows.column("doc_id").to_pylist()
    assert rows.equals(local_rows)
