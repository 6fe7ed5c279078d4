"""Issue 32, case 1: a task of a killed run never writes into the next run (fencing).

A real `dask scheduler` and one `dask worker --nthreads 2`. Run A (a config that keeps and
analyses long documents) is interrupted while its last partition, heavy, is still being
analysed on one worker thread. Run B, another config, `--overwrite`s the same directory on
the other thread and finishes while A's task still runs. Once that straggler has ended,
B's output must be exactly that of a clean run of B, and so must a later `--resume`.

The straggler's analysis waits at a gate the test holds (a file, through the worker's Kiwi
preload in tests/support/kiwi_fault_preload.py), so it is still running after run B however
loaded the machine; the test lets it go on only once B has finished.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.data import SPEECHES, needs_shared
from support.processes import console_script, dask_worker_args, start_dask_scheduler, wait_for

SUPPORT = Path(__file__).resolve().parents[1] / "support"
PRELOADS = [SUPPORT / "kiwi_fault_preload.py", SUPPORT / "fence_spy_preload.py"]  # the gate; refusals logged

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # real scheduler, worker and dask-prep processes

LIGHT_DOCS = 70  # partitions 0-6 (10 records each: 80 records cut for 2 threads)
HEAVY_DOCS = 10  # partition 7: about 60,000 characters each, all analysed whole under config A
# The straggler waits at the gate longer than an analysis may take by default (the watchdog
# would end its worker): run A's bound is raised, so only the test ends the wait.
CONFIG_A = "rules:\n  length: {max: 100000}\n  pronoun: false\n  nnp_ratio: false\ninput:\n  analysis_timeout: 3600\n"
HEAVY_MARK = "무거운문서표식"  # in the heavy documents only: their analysis waits at the gate


def _corpus(shard0: Path, path: Path) -> None:
    import zstandard

    with open(shard0, "rb") as raw:
        lines = zstandard.ZstdDecompressor().stream_reader(raw).read().decode("utf-8").splitlines()
    light = [json.loads(line) for line in lines[:LIGHT_DOCS]]
    speeches = [json.loads(line)["text"] for line in SPEECHES.read_text(encoding="utf-8").splitlines()]
    with open(path, "w", encoding="utf-8") as out:
        for doc in light:
            out.write(json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n")
        for i in range(HEAVY_DOCS):
            text = "\n".join(speeches[(i * 7 + j) % len(speeches)] for j in range(7))[:60000]
            heavy = {"id": f"heavy-{i}", "text": f"{i}번 문서 {HEAVY_MARK}.\n{text}"}
            out.write(json.dumps(heavy, ensure_ascii=False) + "\n")


def _busy_threads(monitor) -> int:
    return sum(monitor.run(lambda dask_worker: len(dask_worker.active_threads)).values())


def _output(path: Path) -> dict:
    """Everything a user reads of a run: dataset rows, parquet shards, decisions, report counts."""
    import datasets
    import pyarrow.parquet as pq

    report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    dataset = datasets.load_from_disk(str(path / "entity_coref_v2_2048")).with_format("arrow")[:]
    return {
        "rows": dataset.to_pylist(),
        "parquet": [pq.read_table(p).to_pylist() for p in sorted((path / "parquet").glob("*.parquet"))],
        "decisions": {p.name: pq.read_table(p).to_pylist() for p in sorted((path / "decisions").glob("*.parquet"))},
        "decisions_schema": [str(pq.read_schema(p)) for p in sorted((path / "decisions").glob("*.parquet"))],
        "counts": {key: report[key] for key in ("documents", "rejected", "examples", "entities")},
    }


@needs_shared
def test_a_killed_runs_straggler_never_writes_into_the_next_run(shard0, tokenizer_dir, tmp_path, spawn):
    from distributed import Client

    if not SPEECHES.is_file():
        pytest.skip(f"the shared speeches are not at {SPEECHES}")
    corpus = tmp_path / "corpus.jsonl"
    _corpus(shard0, corpus)
    (tmp_path / "a.yaml").write_text(CONFIG_A, encoding="utf-8")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler, address = start_dask_scheduler(spawn, scheduler_file, "scheduler.log")
    args, log, _ = dask_worker_args(address, "w", tmp_path)
    args[args.index("--nthreads") + 1] = "2"  # one thread for the straggler, one for the next run
    gate = tmp_path / "gate"
    gate.touch()  # removed once run B has finished: the straggler's analysis goes on then
    fence_log = tmp_path / "fenced-out.log"
    gated = {
        "DASK_PREP_TEST_GATE_MARKER": HEAVY_MARK,
        "DASK_PREP_TEST_GATE_FILE": str(gate),
        "DASK_PREP_TEST_FENCE_LOG": str(fence_log),
    }
    worker = spawn([*args, *(f"--preload={path}" for path in PRELOADS)], log, extra_env=gated)
    out = tmp_path / "out"

    def command(*extra: str, output: Path = out) -> list[str]:
        base = [console_script("dask-prep"), "run", str(corpus), "--model", str(tokenizer_dir), "--scheduler", address]
        return [*base, "--output-dir", str(output), "--quiet", *extra]

    with Client(address, timeout="60s", set_as_default=False) as monitor:
        monitor.wait_for_workers(1, timeout=120)
        run_a = subprocess.Popen(
            command("--config", str(tmp_path / "a.yaml"), "--full-analysis"), stderr=subprocess.PIPE, text=True
        )
        stats = out / "_work" / "stats"
        attempts = out / "_work" / "attempts"
        wait_for(
            lambda: (
                all((stats / f"analyse-{i:05d}.json").exists() for i in range(7))
                and any(attempts.glob("analyse-00007*"))
                and Path(f"{gate}.reached").exists()
            ),
            600,
            "run A to reach its heavy last partition and wait at the gate",
            [run_a, scheduler, worker],
        )
        assert not (stats / "analyse-00007.json").exists(), "the heavy partition ended before the interrupt"
        run_a.send_signal(signal.SIGINT)
        _, stderr = run_a.communicate(timeout=120)
        assert run_a.returncode == 130, stderr

        run_b = subprocess.run(command("--overwrite"), capture_output=True, text=True, timeout=600)
        assert run_b.returncode == 0, run_b.stderr
        # The race is real: A's task was still running when B had finished (held at the gate).
        assert _busy_threads(monitor) == 1, "the straggler ended before run B did"
        gate.unlink()  # the straggler analyses its heavy documents now, then comes to its commits
        deadline = time.monotonic() + 900
        while _busy_threads(monitor):
            assert time.monotonic() < deadline, "the straggler did not end in 900 s"
            time.sleep(1)
        time.sleep(2)  # its last writes, if any, have landed
        # Fenced out: the straggler came to a commit and was refused, and every stats file is
        # still run B's (a straggler's would name run A).
        token = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["run_token"]
        refused = fence_log.read_text(encoding="utf-8").splitlines() if fence_log.exists() else []
        assert refused, "the straggler never came to a commit"
        assert all(line.split("\t")[0] not in ("", token) for line in refused), refused
        for path in sorted((out / "_work" / "stats").glob("*.json")):
            assert json.loads(path.read_text(encoding="utf-8")).get("run") == token, path.name

        clean = tmp_path / "clean"
        reference = subprocess.run(command(output=clean), capture_output=True, text=True, timeout=600)
        assert reference.returncode == 0, reference.stderr
        expected = _output(clean)
        assert expected["rows"] and len(expected["decisions"]) == 8
        assert _output(out) == expected, "run B's output differs from a clean run's"

        resumed = subprocess.run(command("--resume"), capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        assert _output(out) == expected, "the resumed output differs from a clean run's"
