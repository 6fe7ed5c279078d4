"""Issue 32, case 3: a store that stops answering never hangs a run.

A real moto S3 server in a process of its own is SIGSTOPped mid-run (its port still accepts
connections, nothing answers). The run must end with exit 2 and one line within 60 s of the
hang, and a Ctrl-C during such a hang must end a run within seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.data import needs_shared
from support.processes import console_script
from support.s3_server import CREDENTIALS, S3Server

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # real scheduler, worker and dask-prep processes

HANG_BOUND_SECONDS = 60.0
INTERRUPT_BOUND_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def moto_process(tmp_path) -> Iterator[tuple[subprocess.Popen, S3Server]]:
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    port = _free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    server = S3Server(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "the moto server did not start"
            time.sleep(0.2)
    try:
        yield proc, server
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)
        log.close()


def _start_run(
    server: S3Server, shard0: Path, tokenizer_dir: Path, output: str, command: list[str] | None = None
) -> subprocess.Popen:
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": server.endpoint, "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("AWS_MAX_ATTEMPTS", None)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    args = [*(command or [console_script("dask-prep")]), "run", str(shard0), "--model", str(tokenizer_dir)]
    args += ["--max-samples", "1000", "--partition-size", "25", "--full-analysis", "--n-workers", "1"]
    args += ["--dashboard-address", "127.0.0.1:0", "--output-dir", output, "--quiet"]
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)


def _hang_mid_run(moto: subprocess.Popen, server: S3Server, run: subprocess.Popen, prefix: str) -> float:
    """SIGSTOP the store once the run has finished two partitions; the time of the hang."""
    fs = server.fs()
    deadline = time.monotonic() + 600
    while len(fs.glob(f"{prefix}/_work/stats/analyse-*.json")) < 2:
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline, "the run did not get going in 600 s"
        time.sleep(0.5)
    moto.send_signal(signal.SIGSTOP)
    return time.monotonic()


def _wait(run: subprocess.Popen, bound: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        _, stderr = run.communicate(timeout=bound + 60)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        raise AssertionError(f"the run still hung {bound + 60:.0f} s later") from None
    return stderr, time.monotonic() - started


@needs_shared
def test_a_store_that_stops_answering_ends_the_run_in_one_line(moto_process, shard0, tokenizer_dir):
    moto, server = moto_process
    bucket = server.bucket("hang")
    run = _start_run(server, shard0, tokenizer_dir, f"s3://{bucket}/out")
    hung_at = _hang_mid_run(moto, server, run, f"{bucket}/out")
    stderr, _ = _wait(run, HANG_BOUND_SECONDS)
    elapsed = time.monotonic() - hung_at
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert run.returncode == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("dask-prep: error:"), stderr
    assert elapsed < HANG_BOUND_SECONDS, f"exit 2 only {elapsed:.0f} s after the store hung"


@needs_shared
def test_ctrl_c_ends_a_run_hung_on_its_store_within_seconds(moto_process, shard0, tokenizer_dir):
    moto, server = moto_process
    bucket = server.bucket("interrupt")
    run = _start_run(server, shard0, tokenizer_dir, f"s3://{bucket}/out")
    _hang_mid_run(moto, server, run, f"{bucket}/out")
    time.sleep(5)  # the run's requests are waiting on the store now
    assert run.poll() is None, run.communicate()[1]
    run.send_signal(signal.SIGINT)
    stderr, elapsed = _wait(run, INTERRUPT_BOUND_SECONDS)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr, stderr
    assert elapsed < INTERRUPT_BOUND_SECONDS, f"the run ended {elapsed:.0f} s after Ctrl-C"


# `dask-prep` whose lock lease is LEASE_SECONDS (not 120 s) and whose every renewal fails, as
# on a store that answers the run's other requests but not the lock's (argv[1]: the lease).
LEASE_SECONDS = 3.0
RENEWAL_FAILS = """
import sys
from dask_prep.io import store_lock
store_lock.LOCK_LEASE_SECONDS = float(sys.argv.pop(1))
def renew(self):
    raise OSError("the store did not answer (a test's renewal that always fails)")
store_lock.StoreLock.renew = renew
sys.argv[0] = "dask-prep"
from dask_prep.cli.main import entry_point
entry_point()
"""


@needs_shared
def test_a_lock_not_renewed_for_its_lease_stops_the_run_with_exit_2_and_one_line(moto_process, shard0, tokenizer_dir):
    _, server = moto_process
    bucket = server.bucket("lease")
    command = [sys.executable, "-c", RENEWAL_FAILS, str(LEASE_SECONDS)]
    run = _start_run(server, shard0, tokenizer_dir, f"s3://{bucket}/out", command)
    fs = server.fs()
    deadline = time.monotonic() + 600
    while not fs.exists(f"{bucket}/out/.dask-prep.lock"):  # held from here on (after the cluster's start)
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline, "the run did not take its lock in 600 s"
        time.sleep(0.2)
        fs.invalidate_cache()
    held_at = time.monotonic()
    stderr, _ = _wait(run, HANG_BOUND_SECONDS)
    elapsed = time.monotonic() - held_at
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert run.returncode == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("dask-prep: error:"), stderr
    assert f"could not be renewed for {LEASE_SECONDS:.0f} s" in lines[0] and "--resume" in lines[0], stderr
    # It stopped mid-run: nothing was published (the run on its own takes far longer than the lease).
    assert not fs.exists(f"{bucket}/out/report.json")
    assert not fs.exists(f"{bucket}/out/entity_coref_v2_2048/state.json")
    assert elapsed < HANG_BOUND_SECONDS, f"the run stopped {elapsed:.0f} s after it took its lock"
