"""Issue 32, case 4: the scheduler lost mid-run is an error the user can act on.

A real `dask scheduler` process is SIGKILLed while `dask-prep run --scheduler` computes:
the run ends with exit 2 and one line that says to `--resume`, and a later `--resume` on a
new scheduler finishes, reusing the partitions finished before the loss.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from support.data import needs_shared
from support.processes import console_script, dask_worker_args, signal_group, start_dask_scheduler, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # real scheduler, worker and dask-prep processes


def _cluster(spawn, tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    """A `dask scheduler` and one `dask worker`; (the scheduler's process, its address)."""
    scheduler_file = tmp_path / f"{name}.json"
    scheduler, address = start_dask_scheduler(spawn, scheduler_file, f"{name}-scheduler.log")
    spawn(*dask_worker_args(address, f"{name}-worker", tmp_path))
    return scheduler, address


@needs_shared
def test_scheduler_lost_mid_run_exits_2_with_one_line_and_resume_works(shard0, tokenizer_dir, tmp_path, spawn):
    from distributed import Client

    out = tmp_path / "out"

    def command(address: str, *extra: str) -> list[str]:
        base = [console_script("dask-prep"), "run", str(shard0), "--model", str(tokenizer_dir)]
        return base + ["--max-samples", "600"] + [
            "--partition-size", "50", "--full-analysis", "--scheduler", address, "--output-dir", str(out), "--quiet",
            *extra,
        ]  # fmt: skip

    scheduler, address = _cluster(spawn, tmp_path, "first")
    with Client(address, timeout="60s", set_as_default=False) as monitor:
        monitor.wait_for_workers(1, timeout=120)
    run = subprocess.Popen(command(address), stderr=subprocess.PIPE, text=True)
    stats = out / "_work" / "stats"
    wait_for(lambda: len(list(stats.glob("analyse-*.json"))) >= 2, 600, "two finished partitions", [run])
    signal_group(scheduler, signal.SIGKILL)
    try:
        _, stderr = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.kill()
        raise AssertionError("the run did not end within 120 s of losing its scheduler") from None
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert run.returncode == 2, stderr
    assert len(lines) == 1 and "scheduler" in lines[0] and "--resume" in lines[0], stderr
    finished = len(list(stats.glob("analyse-*.json")))

    _, address = _cluster(spawn, tmp_path, "second")
    resumed = subprocess.run(command(address, "--resume"), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["partitions"]["analysis_reused"] >= min(finished, 2)
    assert report["documents"]["read"] == 600
