"""One measured row: a workload run as a subprocess whose whole process tree is sampled.

`Bench` runs the three kinds of workload the sections compare (the Kiwi limit in
`workloads/kiwi_limit.py`, the old Pool design in `workloads/baseline.py`, and `dask-prep run`)
and keeps every `Row`; a failed run is recorded in `Bench.failures` instead of ending the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import BENCH_DIR, dir_bytes, load_average, python, run_measured

WORKLOADS = BENCH_DIR / "workloads"


@dataclass(eq=False)  # rows are compared by identity
class Row:
    name: str
    kind: str  # limit | kiwi_alone | baseline | pipeline
    wall: float  # seconds; for the limit rows the analysis alone
    docs: int  # documents read (the whole corpus, for every row)
    analysed_chars: int  # characters of the documents analysed (each whole, in the limit rows)
    stage_seconds: float | None = None  # the filter stage alone (Kiwi + rules + reading)
    peak_rss: int = 0
    cpu_seconds: float = 0.0
    examples: int | None = None
    dataset_bytes: int | None = None
    load_before: float = 0.0
    load_after: float = 0.0
    # characters Kiwi actually analysed: less than analysed_chars with progressive analysis
    kiwi_chars: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.wall

    @property
    def chars_per_s(self) -> float:
        return self.analysed_chars / self.wall

    @property
    def stage_chars_per_s(self) -> float | None:
        return self.analysed_chars / self.stage_seconds if self.stage_seconds else None

    @property
    def bytes_per_example(self) -> float | None:
        if self.examples and self.dataset_bytes is not None:
            return self.dataset_bytes / self.examples
        return None


class RunFailed(RuntimeError):
    """A measured subprocess exited with an error (recorded in Bench.failures)."""


# ---- running one row ------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rows: dict[str, Row] = {}
        self.failures: dict[str, str] = {}

    def attempt(self, fn: Any, *args: Any) -> Row | None:
        """Run one row; a failed run is recorded (and reported) instead of ending the benchmark."""
        try:
            row = fn(*args)
        except RunFailed:
            return None
        self.save_partial()
        return row

    def save_partial(self) -> None:
        """Rows so far, in case a later run fails or the benchmark is interrupted."""
        partial = {"rows": [row_json(r) for r in self.rows.values()], "failures": self.failures}
        (self.work / "partial.json").write_text(json.dumps(partial, indent=2, ensure_ascii=False))

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def limit(self, texts_path: Path, mode: str, n: int, docs: int, repeat: int = 0, kind: str = "limit") -> Row:
        """Kiwi alone on the texts. kind "limit" is the filter target's ceiling; "kiwi_alone"
        (1 and 2 processes, in the scaling section) is this host's own 2 / 1 scaling."""
        label = "Kiwi limit" if kind == "limit" else "Kiwi alone"
        if mode == "processes":
            name = f"{label}: {n} process{'es' if n > 1 else ''} x 1 Kiwi thread"
        else:
            name = f"{label}: 1 process x {n} Kiwi threads"
        name += f" #{repeat + 1}" if repeat else ""
        out = self.work / f"{kind}-{mode}-{n}-{repeat + 1}.json"
        cmd = [python(), str(WORKLOADS / "kiwi_limit.py"), str(texts_path), "--mode", mode, "--n", str(n)]
        row = self._measure(name, kind, cmd + ["--out", str(out)])
        result = json.loads(out.read_text())
        row.details.update(result, process_wall=row.wall)
        row.wall = result["seconds"]
        row.stage_seconds = result["seconds"]
        row.docs = docs
        row.analysed_chars = result["chars"]
        row.kiwi_chars = result["chars"]
        return row

    def baseline(self, name: str, inputs: list[str], options: list[str] | None = None) -> Row:
        out_dir = self.work / f"out-{_slug(name)}"
        shutil.rmtree(out_dir, ignore_errors=True)
        result_path = self.work / f"{_slug(name)}.json"
        cmd = [python(), str(WORKLOADS / "baseline.py"), *inputs, "--model", self.args.model]
        cmd += ["--output-dir", str(out_dir), "--result", str(result_path)]
        cmd += ["--seq-len", str(self.args.seq_len), "--max-entity-freq", str(self.args.max_entity_freq)]
        row = self._measure(name, "baseline", cmd + (options or []))
        result = json.loads(result_path.read_text())
        row.docs = result["read"]
        row.analysed_chars = result["analysed_chars"]
        row.kiwi_chars = result["analysed_chars"]
        row.stage_seconds = result["seconds"]["filter"]
        row.examples = result["examples"]
        row.dataset_bytes = dir_bytes(result["dataset"])
        row.details.update(result)
        self._clean(out_dir)
        return row

    def pipeline(self, name: str, inputs: list[str], options: list[str] | None = None) -> Row:
        out_dir = self.work / f"out-{_slug(name)}"
        shutil.rmtree(out_dir, ignore_errors=True)
        cmd = [
            python(),
            "-m",
            "dask_prep",
            "run",
            *inputs,
            "--output-dir",
            str(out_dir),
            "--model",
            self.args.model,
            "--quiet",
        ]
        cmd += ["--seq-len", str(self.args.seq_len), "--max-entity-freq", str(self.args.max_entity_freq)]
        cmd += options or []
        row = self._measure(name, "pipeline", cmd)
        report = json.loads((out_dir / "report.json").read_text())
        row.docs = report["documents"]["read"]
        row.analysed_chars = report["throughput"]["analysed_chars"]
        row.kiwi_chars = report["throughput"].get("kiwi_chars", row.analysed_chars)
        row.stage_seconds = report["seconds"]["analyse"]
        row.examples = report["examples"]["written"]
        row.dataset_bytes = dir_bytes(report["dataset"])
        row.details.update(
            options=options or [],
            partitions=_partition_count(report["partitions"]),
            per_worker=_per_worker(report.get("partition_log", [])),
            rejected=report.get("rejected", {}),
            documents=report["documents"],
            examples=report["examples"],
            seconds=report["seconds"],
            worker_seconds=report["worker_seconds"],
            analysed_docs=report["throughput"]["analysed_documents"],
            analysis=report.get("analysis"),
            startup_and_shutdown=round(row.wall - report["seconds"]["total"], 3),
            work_dir_bytes=dir_bytes(str(out_dir / "_work")),
        )
        self._clean(out_dir)
        return row

    def wait_for_quiet(self) -> None:
        """On a shared machine: wait (bounded) until other load has died down."""
        threshold = self.args.quiet_load
        if threshold is None:
            return
        deadline = time.monotonic() + self.args.max_wait
        if load_average() >= threshold:
            self.log(f"waiting for the 1-min load average {load_average():.1f} to drop below {threshold}")
        while load_average() >= threshold and time.monotonic() < deadline:
            time.sleep(5)

    def _measure(self, name: str, kind: str, cmd: list[str]) -> Row:
        self.wait_for_quiet()
        self.log(f"{name}: {' '.join(cmd)}")
        load_before = load_average()
        log_path = self.work / f"{_slug(name)}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        sample = run_measured(cmd, log_path=str(log_path), env=env)
        if sample.returncode != 0:
            tail = Path(log_path).read_text()[-3000:]
            last = [ln for ln in tail.splitlines() if ln.strip()][-1:] or [""]
            self.failures[name] = f"exit {sample.returncode}: {last[0].strip()[:300]} (log {log_path})"
            self.log(f"{name} FAILED: {self.failures[name]}")
            raise RunFailed(name)
        row = Row(
            name=name,
            kind=kind,
            wall=sample.wall,
            docs=0,
            analysed_chars=0,
            peak_rss=sample.peak_rss,
            cpu_seconds=sample.cpu_seconds,
            load_before=load_before,
            load_after=load_average(),
        )
        timeline = sample.rss_timeline
        step = max(1, len(timeline) // 200)
        row.details["rss_timeline"] = timeline[::step]
        row.details["peak_processes"] = sample.peak_processes
        row.details["processes"] = _roles(sample.per_process)
        row.details["command"] = cmd
        self.log(f"{name}: {sample.wall:.1f} s, peak RSS {sample.peak_rss / 2**20:,.0f} MiB")
        self.rows[name] = row
        return row

    def _clean(self, out_dir: Path) -> None:
        if not self.args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)


def _roles(per_process: dict[int, list]) -> list[dict]:
    """CPU seconds and peak RSS of each process of the tree, by depth (0 = the command)."""
    depth: dict[int, int] = {}
    pids = set(per_process)
    for pid in sorted(per_process):
        d, parent = 0, per_process[pid][0]
        while parent in pids and d < 10:
            d, parent = d + 1, per_process[parent][0]
        depth[pid] = d
    return sorted(
        (
            {"pid": pid, "depth": depth[pid], "cpu": round(v[1], 2), "peak_rss_mib": round(v[2] / 2**20)}
            for pid, v in per_process.items()
        ),
        key=lambda p: (p["depth"], -p["cpu"]),
    )


def _partition_count(partitions: Any) -> int:
    return partitions["total"] if isinstance(partitions, dict) else int(partitions)


def _per_worker(log: list[dict]) -> dict[str, dict[str, int]]:
    """Partitions and documents analysed by each worker (how even the split was)."""
    out: dict[str, dict[str, int]] = {}
    for entry in log:
        worker = str(entry.get("analysed_by"))
        slot = out.setdefault(worker, {"partitions": 0, "read": 0})
        slot["partitions"] += 1
        slot["read"] += entry.get("read", 0)
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def row_json(r: Row) -> dict:
    data = asdict(r)
    data.update(
        docs_per_s=r.docs_per_s,
        chars_per_s=r.chars_per_s,
        stage_chars_per_s=r.stage_chars_per_s,
        bytes_per_example=r.bytes_per_example,
    )
    return data
