"""Speed and memory of dask-prep against the Kiwi limit and the old Pool design.

    python benchmarks/run.py --corpus ../shared/data/kowiki-hplt --model ../shared/tokenizers/koelectra-v1-cased

Runs, side by side in one invocation, each as a subprocess whose whole process tree is
sampled with psutil every 0.2 s:
  1. the Kiwi limit: Kiwi alone on exactly the documents the pipeline sends to Kiwi,
     in batch on all cores, both ways (one process with n Kiwi threads; n processes);
  2. the old design (benchmarks/baseline.py): Pool + imap_unordered + lists in memory +
     padded tokenization + Dataset.from_dict;
  3. `dask-prep run` with default cluster settings (cluster start-up included);
then the scale runs (the corpus repeated --scale times with new ids, for the baseline
and the pipeline; the pipeline with 1 and 2 workers, beside Kiwi alone in 1 and 2
processes: this host's own ceiling for that ratio), prints the table, the ratios and
PASS/FAIL per target, and saves everything as JSON under benchmarks/results/.

`--layouts 2x1x1@2000,2x1x1@500,...` adds a layout comparison (workers x threads per
worker x Kiwi threads @ partition size) on the 1x corpus; `--only` picks sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    dir_bytes,
    kiwi_documents,
    load_average,
    python,
    run_measured,
    write_scaled_corpus,
)
from fineweb_vs_datatrove import compare as compare_with_datatrove  # noqa: E402
from fineweb_vs_datatrove import report as datatrove_report  # noqa: E402

from dask_prep.config import preset  # noqa: E402
from dask_prep.pipeline.cluster import ClusterOptions  # noqa: E402

SECTIONS = ("limit", "fixed", "baseline", "pipeline", "scaling", "scale", "fineweb", "layouts")
DEFAULT_SECTIONS = ("limit", "fixed", "baseline", "pipeline", "scaling", "scale", "fineweb")
FIXED_DOCS = 40  # a run this small measures start-up, imports, model loads and shutdown

TARGETS = {
    "filter": 0.9,  # pipeline filter-stage Kiwi chars/s / Kiwi limit
    "end_to_end": 1.0,  # pipeline docs/s / Pool baseline docs/s (start-up included)
    "memory": 1.15,  # pipeline peak RSS at Nx / at 1x (at most)
    "size": 0.35,  # pipeline bytes per example / baseline padded (at most)
    "scaling": 1.7,  # pipeline 2 workers / 1 worker docs/s
    "fineweb": 1.5,  # fineweb2-ko quality rules docs/s / datatrove's (issue 4)
}


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
        partial = {"rows": [_row_json(r) for r in self.rows.values()], "failures": self.failures}
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
        cmd = [python(), str(BENCH_DIR / "kiwi_limit.py"), str(texts_path), "--mode", mode, "--n", str(n)]
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
        cmd = [python(), str(BENCH_DIR / "baseline.py"), *inputs, "--model", self.args.model]
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


def parse_layout(spec: str) -> tuple[int, int, int, int]:
    """'2x1x1@2000' -> (workers, threads per worker, Kiwi threads, partition size)."""
    shape, _, size = spec.partition("@")
    workers, threads, kiwi = (int(x) for x in shape.split("x"))
    return workers, threads, kiwi, int(size or preset("seed-v2").input.partition_size)


def layout_options(layout: tuple[int, int, int, int]) -> list[str]:
    w, t, k, p = layout
    return ["--n-workers", str(w), "--threads-per-worker", str(t), "--kiwi-threads", str(k), "--partition-size", str(p)]


def default_layout() -> tuple[int, int, int, int]:
    opts = ClusterOptions()
    workers, kiwi_threads = opts.layout()
    return workers, opts.threads_per_worker, kiwi_threads, preset("seed-v2").input.partition_size


# ---- the report -------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row], limit: float | None, baseline: Row | None) -> str:
    head = (
        f"{'run':<44}{'wall s':>8}{'docs/s':>8}{'Kiwi chars/s':>13}{'stage s':>9}"
        f"{'stage chars/s':>14}{'to Kiwi':>10}{'peak RSS MiB':>13}{'CPU s':>8}{'examples':>9}{'B/example':>10}"
        f"{'x limit':>8}{'x Pool':>8}{'load':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        vs_limit = r.stage_chars_per_s / limit if (limit and r.stage_chars_per_s) else None
        vs_pool = r.docs_per_s / baseline.docs_per_s if (baseline and r.kind in ("baseline", "pipeline")) else None
        lines.append(
            f"{r.name[:43]:<44}{r.wall:>8.1f}{r.docs_per_s:>8.1f}{r.chars_per_s:>13,.0f}"
            f"{_fmt(r.stage_seconds, '.1f'):>9}{_fmt(r.stage_chars_per_s, ',.0f'):>14}"
            f"{_fmt(r.kiwi_chars, ','):>10}{r.peak_rss / 2**20:>13,.0f}{r.cpu_seconds:>8.1f}{_fmt(r.examples, ','):>9}"
            f"{_fmt(r.bytes_per_example, ',.0f'):>10}{_fmt(vs_limit, '.2f'):>8}{_fmt(vs_pool, '.2f'):>8}"
            f"{(r.load_before + r.load_after) / 2:>6.1f}"
        )
    return "\n".join(lines)


def paired_ratios(rows: dict[str, Row], paired: dict[str, list[tuple[str, Any]]]) -> dict[str, list[float]]:
    """Per repeat: filter stage / that repeat's Kiwi limit, pipeline / baseline, 2 / 1 workers,
    and Kiwi alone in 2 / 1 processes."""
    ratios: dict[str, list[float]] = {key: [] for key in paired}
    for pipe, limits in paired.get("filter", []):
        best = max((rows[n].chars_per_s for n in limits if n in rows), default=None)
        if pipe in rows and best and rows[pipe].stage_chars_per_s:
            ratios["filter"].append(rows[pipe].stage_chars_per_s / best)
    for key in ("end_to_end", "scaling", "kiwi_scaling"):
        for a, b in paired.get(key, []):
            if a in rows and b in rows:
                ratios[key].append(rows[a].docs_per_s / rows[b].docs_per_s)
    return ratios


def targets(
    rows: dict[str, Row], ratios: dict[str, list[float]], names: dict[str, str], scale: int, fineweb: dict | None = None
) -> list[dict]:
    """The issue's targets; the speed ratios are medians over the repeats (`paired_ratios`)."""
    out = []

    def add(key: str, label: str, value: float | None, at_least: bool) -> None:
        bound = TARGETS[key]
        target = {"target": key, "label": label, "value": value, "bound": bound, "sign": ">=" if at_least else "<="}
        if value is None:
            result = "SKIP"
        else:
            result = "PASS" if (value >= bound if at_least else value <= bound) else "FAIL"
        out.append({**target, "result": result})

    def median_of(key: str) -> float | None:
        values = ratios.get(key) or []
        return statistics.median(values) if values else None

    pipe = rows.get(names["pipeline"])
    base = rows.get(names["baseline"])
    pipe_1, pipe_n = rows.get(names["pipeline_nodedup"]), rows.get(names["pipeline_scaled"])
    add("filter", "filter stage Kiwi chars/s / Kiwi limit", median_of("filter"), True)
    add("end_to_end", "docs/s / Pool baseline (start-up incl.)", median_of("end_to_end"), True)
    add(
        "memory",
        f"peak RSS at {scale}x / at 1x (pipeline, no dedup)",
        pipe_n.peak_rss / pipe_1.peak_rss if pipe_1 and pipe_n else None,
        False,
    )
    add(
        "size",
        "bytes per example / Pool padded layout",
        pipe.bytes_per_example / base.bytes_per_example
        if pipe and base and pipe.bytes_per_example and base.bytes_per_example
        else None,
        False,
    )
    add("scaling", "docs/s 2 workers / 1 worker", median_of("scaling"), True)
    add("fineweb", "fineweb2-ko docs/s / datatrove, 2 workers", fineweb["ratio"] if fineweb else None, True)
    return out


def median_row(runs: list[Row]) -> Row:
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def counterbalanced(runs: list, k: int) -> list:
    """The runs in order for the k-th repetition: as given, then reversed, then as given, ..."""
    return runs if k % 2 == 0 else runs[::-1]


def repeats_text(ratios: dict[str, list[float]]) -> str:
    labels = {
        "filter": "filter stage / limit",
        "end_to_end": "pipeline / baseline",
        "scaling": "2 / 1 workers",
        "kiwi_scaling": "Kiwi alone, 2 / 1 processes",
    }
    return "\n".join(
        f"  {labels[key]} per repeat, in run order: {', '.join(f'{v:.3f}' for v in values)}"
        for key, values in ratios.items()
        if len(values) > 1
    )


def kiwi_scaling_text(ratios: dict[str, list[float]]) -> str:
    """Kiwi's own 2 / 1 process scaling on this host, beside the scaling target (no target)."""
    values = ratios.get("kiwi_scaling") or []
    if not values:
        return ""
    return _status_line(
        "info",
        "Kiwi alone, 2 / 1 processes (the ceiling)",
        statistics.median(values),
        "this host's cores, for the scaling target",
    )


def targets_text(results: list[dict]) -> str:
    return "\n".join(
        _status_line(t["result"], t["label"], t["value"], f"target {t['sign']} {t['bound']}") for t in results
    )


def _status_line(status: str, label: str, value: float | None, note: str) -> str:
    """One line under the table: PASS/FAIL/SKIP of a target, or info."""
    shown = "-" if value is None else f"{value:.3f}"
    return f"  {status:<5} {label:<44} {shown:>7}  ({note})"


def diagnostics(rows: list[Row], scale_note: dict[str, Row]) -> str:
    lines = []
    for r in rows:
        d = r.details
        if r.kind == "pipeline":
            workers = d.get("workers") or 1
            ws = d["worker_seconds"]
            busy = ws.get("filter", 0.0) / (workers * r.stage_seconds) if r.stage_seconds else 0
            lines.append(
                f"  {r.name}: partitions {d['partitions']}, stages {d['seconds']}, "
                f"start-up+shutdown {d['startup_and_shutdown']} s; worker seconds {ws}; "
                f"Kiwi busy {busy:.0%} of {workers} task slot(s) x analyse stage; per worker {d.get('per_worker')}; "
                f"rejected {d.get('rejected')}; analysis {d.get('analysis')}"
            )
        elif r.kind == "baseline":
            types = {
                k: v.replace("List(Value(", "[").replace("Value(", "").replace("))", "]").strip(")'")
                for k, v in (d.get("features") or {}).items()
                if k in ("input_ids", "attention_mask", "labels")
            }
            lines.append(f"  {r.name}: stages {d['seconds']}; kept {d.get('kept')}; column types {types}")
        elif r.kind in ("limit", "kiwi_alone"):
            extra = d.get("per_process_seconds") or d.get("kiwi_build_seconds")
            lines.append(f"  {r.name}: {d['docs']} docs, {d['chars']:,} chars; {extra}")
    for r in rows:
        procs = r.details.get("processes") or []
        if procs:
            shown = ", ".join(f"d{p['depth']}:{p['cpu']:.1f}s/{p['peak_rss_mib']}M" for p in procs if p["cpu"] >= 0.5)
            lines.append(f"  CPU s / peak RSS per process (depth in tree), {r.name}: {shown}")
    for label, (small, big) in scale_note.items():
        lines.append(
            f"  memory growth {label}: {small.peak_rss / 2**20:,.0f} -> {big.peak_rss / 2**20:,.0f} MiB "
            f"({big.peak_rss / small.peak_rss:.2f}x)"
        )
    return "\n".join(lines)


# ---- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True, help="directory of .jsonl(.zst) shards")
    parser.add_argument("--model", required=True, help="tokenizer directory or hub name")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--max-entity-freq", type=int, default=1000)
    parser.add_argument("--scale", type=int, default=4, help="copies of the corpus for the memory runs")
    parser.add_argument("--max-shards", type=int, help="use only the first N shards (for quick checks)")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each compared pair (pipeline/baseline, 1/2 workers), in A B, B A, ... order; median used",
    )
    parser.add_argument("--layouts", default="", help="e.g. 2x1x1@2000,2x1x1@500,1x1x2@2000 (adds 'layouts')")
    parser.add_argument("--limit-modes", default="processes,threads", help="processes,threads")
    parser.add_argument("--work-dir", help="scratch directory (default: a new temp dir, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the outputs of every run")
    parser.add_argument("--quiet-load", type=float, help="before each run wait until the load average is below this")
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait for --quiet-load at most")
    parser.add_argument("--results-dir", default=str(BENCH_DIR / "results"))
    args = parser.parse_args(argv)

    sections = {s for s in args.only.split(",") if s}
    if args.layouts:
        sections.add("layouts")
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    args.model = os.path.abspath(args.model) if os.path.exists(args.model) else args.model
    corpus = os.path.abspath(args.corpus)
    shards = sorted(str(p) for p in Path(corpus).iterdir() if p.name.endswith((".jsonl.zst", ".jsonl")))
    if args.max_shards:
        shards = shards[: args.max_shards]
    own_work = args.work_dir is None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="dask-prep-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    cores = os.cpu_count() or 1
    started = dt.datetime.now()

    try:
        config = preset("seed-v2")
        bench.log(f"selecting the documents the pipeline sends to Kiwi ({len(shards)} shards)")
        kiwi_set = kiwi_documents(shards, config)
        texts_path = work / "kiwi_texts.pkl"
        with open(texts_path, "wb") as handle:
            pickle.dump(kiwi_set.texts, handle)
        bench.log(f"{kiwi_set.read:,} documents read, {len(kiwi_set.texts):,} to Kiwi, {kiwi_set.chars:,} chars")

        names = {
            "baseline": "Pool baseline 1x",
            "pipeline": "dask-prep 1x (default)",
            "pipeline_nodedup": "dask-prep 1x, no dedup",
            "pipeline_scaled": f"dask-prep {args.scale}x, no dedup",
            "baseline_scaled": f"Pool baseline {args.scale}x",
            "one_worker": "dask-prep 1x, 1 worker x 1 Kiwi thread",
            "baseline_fixed": f"Pool baseline, {FIXED_DOCS} docs (fixed costs)",
            "pipeline_fixed": f"dask-prep, {FIXED_DOCS} docs (fixed costs)",
            "two_workers": "dask-prep 1x, 2 workers x 1 Kiwi thread",
        }
        # Each compared set runs --repeat times, and each target is the median of the ratios
        # of its repeats: a ratio compares runs made minutes apart, next to each other, while
        # the host's speed drifts by 10-25 % over a benchmark, often steadily. The order is
        # counterbalanced (limit, pipeline, baseline; then baseline, pipeline, limit; ...) so
        # that a steady drift does not favour one side.
        modes = [m for m in args.limit_modes.split(",") if m] if "limit" in sections else []
        repeats: dict[str, list[str]] = {}
        paired: dict[str, list[tuple[str, str | list[str]]]] = {
            "filter": [],
            "end_to_end": [],
            "scaling": [],
            "kiwi_scaling": [],
        }

        def repeated(role: str, k: int) -> str:
            name = names[role] if k == 0 else f"{names[role]} #{k + 1}"
            repeats.setdefault(role, []).append(name)
            return name

        for k in range(args.repeat):
            limits: list[str] = []
            pipe = repeated("pipeline", k) if "pipeline" in sections else None
            base = repeated("baseline", k) if "baseline" in sections else None

            def run_limits(k: int = k, limits: list[str] = limits) -> None:
                for mode in counterbalanced(modes, k):
                    row = bench.attempt(bench.limit, texts_path, mode, cores, kiwi_set.read, k)
                    if row is not None:
                        limits.append(row.name)

            def run_pipeline(k: int = k, pipe: str | None = pipe) -> None:
                if pipe and bench.attempt(bench.pipeline, pipe, shards) and k == 0:
                    check_kiwi_set(bench.rows[pipe], kiwi_set)

            def run_baseline(base: str | None = base) -> None:
                if base:
                    bench.attempt(bench.baseline, base, shards)

            for run in counterbalanced([run_limits, run_pipeline, run_baseline], k):
                run()
            if pipe:
                paired["filter"].append((pipe, limits))
                paired["end_to_end"].append((pipe, base))
        limit_rows = [r for r in bench.rows.values() if r.kind == "limit"]
        limit = max((r.chars_per_s for r in limit_rows), default=None)

        default = default_layout()
        d_workers = default[0]
        if "scaling" in sections:
            # Workers of one core each (one single-threaded Kiwi), so that 2 workers use 2 cores
            # and 1 worker uses 1, whatever the default layout. Beside each pair, Kiwi alone in
            # 1 and in 2 single-threaded processes on the limit's texts: how far two cores of
            # this host scale Kiwi itself (the pipeline's ceiling).
            one_core = ["--threads-per-worker", "1", "--kiwi-threads", "1"]
            for k in range(args.repeat):
                pair = {role: repeated(role, k) for role in ("one_worker", "two_workers")}
                kiwi_rows: dict[int, str] = {}

                def run_workers(k: int = k, pair: dict[str, str] = pair) -> None:
                    for role, workers in counterbalanced([("one_worker", "1"), ("two_workers", "2")], k):
                        bench.attempt(bench.pipeline, pair[role], shards, ["--n-workers", workers, *one_core])

                def run_kiwi_alone(k: int = k, kiwi_rows: dict[int, str] = kiwi_rows) -> None:
                    for n in counterbalanced([1, 2], k):
                        row = bench.attempt(bench.limit, texts_path, "processes", n, kiwi_set.read, k, "kiwi_alone")
                        if row is not None:
                            kiwi_rows[n] = row.name

                for run in counterbalanced([run_workers, run_kiwi_alone], k):
                    run()
                paired["scaling"].append((pair["two_workers"], pair["one_worker"]))
                if len(kiwi_rows) == 2:
                    paired["kiwi_scaling"].append((kiwi_rows[2], kiwi_rows[1]))

        if "fixed" in sections:
            tiny = ["--max-samples", str(FIXED_DOCS)]
            bench.attempt(bench.baseline, names["baseline_fixed"], shards, tiny)
            bench.attempt(bench.pipeline, names["pipeline_fixed"], shards, tiny)

        if "scale" in sections:
            scaled = work / f"corpus-{args.scale}x"
            bench.log(f"writing the {args.scale}x corpus to {scaled}")
            write_scaled_corpus_from(shards, str(scaled), args.scale)
            bench.attempt(bench.baseline, names["baseline_scaled"], [str(scaled)], ["--no-dedup"])
            # The copies have new ids but the same texts: with dedup on, both designs would
            # reject 3 of every 4 as duplicates. The memory runs are without dedup, so both do
            # N times the work (the 1x corpus has no duplicates: dedup on or off, same work).
            bench.attempt(bench.pipeline, names["pipeline_nodedup"], shards, ["--no-dedup"])
            bench.attempt(bench.pipeline, names["pipeline_scaled"], [str(scaled)], ["--no-dedup"])

        fineweb = None
        if "fineweb" in sections:
            bench.wait_for_quiet()
            bench.log("fineweb2-ko quality rules against datatrove's LocalPipelineExecutor, 2 workers")
            try:
                fineweb = compare_with_datatrove(corpus, workers=2, verbose=False)
            except RuntimeError as exc:  # one side failed: record it, keep the other rows
                bench.failures["fineweb vs datatrove"] = str(exc)[-300:]

        layout_rows: list[Row] = []
        if "layouts" in sections:
            specs = [s for s in (args.layouts or "").split(",") if s] or DEFAULT_LAYOUTS
            for spec in specs:
                layout = parse_layout(spec)
                name = f"layout {spec}"
                if layout == default and names["pipeline"] in bench.rows:
                    row = bench.rows[names["pipeline"]]
                else:
                    row = bench.attempt(bench.pipeline, name, shards, layout_options(layout))
                    if row is None:
                        continue
                row.details["layout"] = spec
                row.details["workers"] = layout[0] * layout[1]  # task slots
                layout_rows.append(row)

        for row in bench.rows.values():
            if row.kind == "pipeline" and "workers" not in row.details:
                row.details["workers"] = _workers_of(row.details.get("options", []), d_workers)

        order = [r for r in bench.rows.values() if r.kind == "limit"]
        order += [
            bench.rows[n]
            for n in (
                names["baseline"],
                names["pipeline"],
                names["one_worker"],
                names["two_workers"],
                names["baseline_scaled"],
                names["pipeline_nodedup"],
                names["pipeline_scaled"],
                names["baseline_fixed"],
                names["pipeline_fixed"],
            )
            if n in bench.rows
        ]
        order += [r for r in bench.rows.values() if r not in order and r not in layout_rows]
        chosen = dict(bench.rows)  # a repeated row's name -> that side's median run
        for role, repeat_names in repeats.items():
            runs = [bench.rows[n] for n in repeat_names if n in bench.rows]
            if runs:
                chosen[names[role]] = median_row(runs)
        base = chosen.get(names["baseline"])
        ratios = paired_ratios(bench.rows, paired)
        results = targets(chosen, ratios, names, args.scale, fineweb)
        growth = {}
        for small, big in (("baseline", "baseline_scaled"), ("pipeline_nodedup", "pipeline_scaled")):
            if names[small] in chosen and names[big] in chosen:
                growth[f"{small} 1x -> {args.scale}x"] = (chosen[names[small]], chosen[names[big]])

        out = [
            f"dask-prep benchmark, {started:%Y-%m-%d %H:%M}, {cores} cores, {platform.node()}; "
            f"corpus {corpus} ({len(shards)} shards, {kiwi_set.read:,} docs; "
            f"{len(kiwi_set.texts):,} docs / {kiwi_set.chars:,} chars to Kiwi)",
            "",
            table(order, limit, base),
            "",
            "Kiwi limit = best chars/s of the 'Kiwi limit' rows (the filter target uses each repeat's own)"
            + (f": {limit:,.0f} chars/s" if limit else " (not measured)")
            + ". wall/docs/s of a limit row = the analysis alone, over the whole corpus's documents.",
            "stage = the filter stage (read + cheap rules + Kiwi + analysis rules + entities); "
            "Kiwi chars/s and stage chars/s count the candidates' characters (what the limit analyses whole); "
            "'to Kiwi' = characters Kiwi actually analysed (progressive analysis: chunks and whole documents); "
            "'x limit' = stage chars/s / limit; 'x Pool' = docs/s / Pool baseline 1x docs/s; "
            "load = 1-min load average around the run.",
            "",
            f"Targets (speed: the median of {args.repeat} ratios, each between runs made next to each other):"
            if args.repeat > 1
            else "Targets:",
            targets_text(results),
            kiwi_scaling_text(ratios),
            repeats_text(ratios),
            "",
            "Diagnostics:",
            diagnostics(order + [r for r in layout_rows if r not in order], growth),
        ]
        if fineweb:
            out += ["", datatrove_report(fineweb)]
        if layout_rows or "layouts" in sections:
            out += [
                "",
                "Layouts (workers x threads per worker x Kiwi threads @ partition size):",
                table(layout_rows, limit, base),
            ]
            out += [f"{name:<44}FAILED" for name in bench.failures if name.startswith("layout ")]
        if bench.failures:
            out += ["", "Failed runs:"] + [f"  {name}: {why}" for name, why in bench.failures.items()]
        text = "\n".join(out)
        print(text)

        results_dir = Path(args.results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"run-{started:%Y%m%d-%H%M%S}.json"
        payload = {
            "started": started.isoformat(timespec="seconds"),
            "argv": sys.argv,
            "cores": cores,
            "machine": platform.platform(),
            "corpus": {
                "shards": shards,
                "read": kiwi_set.read,
                "kiwi_docs": len(kiwi_set.texts),
                "kiwi_chars": kiwi_set.chars,
            },
            "limit_chars_per_second": limit,
            "rows": [_row_json(r) for r in bench.rows.values()],
            "layouts": [r.name for r in layout_rows],
            "targets": results,
            "fineweb_vs_datatrove": fineweb,
            "failures": bench.failures,
            "table": text,
        }
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        print(f"\nresults: {path}")
        failed = [t for t in results if t["result"] == "FAIL"]
        return 1 if failed or bench.failures else 0
    finally:
        if own_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not own_work or args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)


DEFAULT_LAYOUTS = ["1x1x2@2000", "1x1x2@500", "2x1x1@2000", "2x1x1@500", "2x1x2@2000", "1x2x1@2000"]


def _workers_of(options: list[str], default: int) -> int:
    if "--n-workers" in options:
        return int(options[options.index("--n-workers") + 1])
    return default


def write_scaled_corpus_from(shards: list[str], dest: str, copies: int) -> None:
    """The scaled corpus from exactly the shards in use (all, or --max-shards)."""
    source = Path(dest + "-src")
    source.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        link = source / Path(shard).name
        if not link.exists():
            link.symlink_to(shard)
    write_scaled_corpus(str(source), dest, copies)


def check_kiwi_set(row: Row, kiwi_set: Any) -> None:
    """The limit ran on exactly what the pipeline analysed: same documents, same chars."""
    docs, chars = row.details["analysed_docs"], row.analysed_chars
    same = docs == len(kiwi_set.texts) and chars == kiwi_set.chars
    row.details["kiwi_set_matches_pipeline"] = same
    if not same:
        print(
            f"WARNING: the pipeline analysed {docs:,} docs / {chars:,} chars, the limit used "
            f"{len(kiwi_set.texts):,} / {kiwi_set.chars:,}",
            file=sys.stderr,
        )


def _row_json(r: Row) -> dict:
    data = asdict(r)
    data.update(
        docs_per_s=r.docs_per_s,
        chars_per_s=r.chars_per_s,
        stage_chars_per_s=r.stage_chars_per_s,
        bytes_per_example=r.bytes_per_example,
    )
    return data


if __name__ == "__main__":
    sys.exit(main())
