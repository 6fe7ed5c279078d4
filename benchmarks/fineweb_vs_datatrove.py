"""FineWeb-2 Korean quality filtering: dask_prep against datatrove, side by side.

    python benchmarks/fineweb_vs_datatrove.py --corpus ../shared/data/kowiki-hplt [--workers 2] [--repeats 1]

Both sides judge the same files with the same thresholds: datatrove's filters are built
from the `fineweb2-ko` config itself (`tests/support/datatrove_oracle.py`), and only
the quality rules are on (no dedup, no coreference rules, which datatrove does not have).

- datatrove: `LocalPipelineExecutor([JsonlReader, GopherRepetitionFilter,
  FineWebQualityFilter, GopherQualityFilter], tasks=<one per file>, workers=N)`. Its Korean
  tokenizer asks Kiwi for the `sbg` model, gone since kiwipiepy 0.22; the one patch here
  makes it default to `cong`, and the pool forks after the patch, so each worker process
  builds one Kiwi and keeps it, as datatrove does for a language code.
- dask_prep: `Pipeline.judged()` on the LocalCluster `dask-prep run` starts by default on
  this machine (`ClusterOptions().layout()`: on 2 cores one worker process whose Kiwi has
  2 threads), so both sides use every core.

Each side runs in a fresh subprocess, one after the other (alternating when repeated).
docs/s counts from before the executor or the cluster starts to the last decision, so
both include their start-up (process pool or cluster, Kiwi builds); dask_prep's figure
without start-up is printed as well.

From benchmarks/run.py (which puts benchmarks/ on sys.path):
    from fineweb_vs_datatrove import compare
    result = compare(corpus, workers=2)   # result["ratio"], result["rows"], result["target_met"]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, run_measured  # noqa: E402

TARGET = 1.5  # dask_prep docs/s over datatrove docs/s (issue 4)
GLOB = "*.jsonl*"


def quality_config() -> Any:
    """The fineweb2-ko preset with only its FineWeb-2 quality rules on."""
    from dask_prep.analysis.filters import FINEWEB2_FILTERS
    from dask_prep.config import preset

    config = preset("fineweb2-ko")
    for name, rule in config.rules.items():
        rule.enabled = rule.enabled and name in FINEWEB2_FILTERS
    config.input.dedup = False
    return config


def corpus_files(corpus: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(corpus, GLOB)))
    if not files:
        raise SystemExit(f"no {GLOB} file in {corpus}")
    return files


def run_datatrove(corpus: str, workers: int, logging_dir: str) -> dict[str, Any]:
    """datatrove's three filters over every file of `corpus` (call in a fresh process)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils import word_tokenizers

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
    from datatrove_oracle import datatrove_filters  # test code: datatrove is a test-only dependency

    # The patch: KiwiTokenizer() asks for "sbg", which kiwipiepy >= 0.22 does not ship.
    word_tokenizers.KiwiTokenizer.__init__.__defaults__ = ("cong",)
    word_tokenizers.load_word_tokenizer.cache_clear()
    files = corpus_files(corpus)
    start = time.perf_counter()
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(corpus, glob_pattern=GLOB, text_key="text", id_key="id"),
            *datatrove_filters(quality_config(), language="kor_Hang"),
        ],
        tasks=len(files),  # datatrove shards by file
        workers=workers,
        logging_dir=logging_dir,
        skip_completed=False,
        start_method="fork",  # the workers inherit the patch above
    )
    stats = executor.run()
    seconds = time.perf_counter() - start
    per_step = [s.to_dict() if hasattr(s, "to_dict") else {} for s in stats.stats]
    read = _stat(per_step[0], "documents")
    kept = _stat(per_step[-1], "forwarded")
    dropped: dict[str, int] = {}
    for step in per_step[1:]:
        for key in step.get("stats", {}):
            if key.startswith("dropped_"):
                dropped[key[len("dropped_") :]] = _stat(step, key)
    return {"side": "datatrove", "docs": read, "kept": kept, "seconds": seconds, "rejected": dropped}


def _stat(step: dict, key: str) -> int:
    value = step.get("stats", {}).get(key, 0)
    return int(value.get("total", 0) if isinstance(value, dict) else value)


def run_dask_prep(corpus: str) -> dict[str, Any]:
    """fineweb2-ko quality rules over every file of `corpus` on a new LocalCluster."""
    from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client
    from dask_prep.pipeline.dedup_graph import NO_DEDUP
    from dask_prep.pipeline.graph import Pipeline

    files = corpus_files(corpus)
    start = time.perf_counter()
    options = ClusterOptions(dashboard_address=":0")
    client = start_client(options)
    try:
        ready = time.perf_counter()
        reasons = dict(Pipeline(files, quality_config()).judged(NO_DEDUP).map(_reason).frequencies().compute())
        end = time.perf_counter()
    finally:
        stop_client(client)
    docs = sum(reasons.values())
    kept = reasons.pop("kept", 0)
    return {
        "side": "dask_prep",
        "layout": "{} worker(s) x {} Kiwi thread(s)".format(*options.layout()),
        "docs": docs,
        "kept": kept,
        "seconds": end - start,
        "seconds_without_startup": end - ready,
        "rejected": reasons,
    }


def _reason(doc: Any) -> str:
    return doc.rejected_by or "kept"


def _run_side(side: str, corpus: str, workers: int) -> dict[str, Any]:
    """One side in a fresh Python process tree, sampled for CPU and memory; result as JSON."""
    with tempfile.TemporaryDirectory(prefix=f"fw2-{side}-") as tmp:
        out = Path(tmp) / "result.json"
        log = Path(tmp) / "log.txt"
        cmd = [sys.executable, __file__, "--side", side, "--corpus", corpus, "--workers", str(workers)]
        cmd += ["--out", str(out), "--logging-dir", str(Path(tmp) / "logs")]
        load_before = load_average()
        sample = run_measured(cmd, log_path=str(log))
        if sample.returncode != 0:
            raise RuntimeError(f"{side} failed ({sample.returncode}):\n" + log.read_text()[-4000:])
        row = json.loads(out.read_text())
    row.update(
        docs_per_s=row["docs"] / row["seconds"],
        cpu_seconds=sample.cpu_seconds,  # the whole process tree: workers, pool, scheduler
        peak_rss=sample.peak_rss,
        load_before=load_before,
        load_after=load_average(),
    )
    return row


def compare(corpus: str, workers: int = 2, repeats: int = 1, verbose: bool = True) -> dict[str, Any]:
    """Run both sides `repeats` times (alternating) and compare the best docs/s of each."""
    rows: list[dict[str, Any]] = []
    for _ in range(repeats):
        for side in ("datatrove", "dask_prep"):
            row = _run_side(side, corpus, workers)
            rows.append(row)
            if verbose:
                print(
                    f"  {side:10s} {row['docs']} docs in {row['seconds']:.1f} s = {row['docs_per_s']:.1f} docs/s, "
                    f"{row['cpu_seconds']:.0f} CPU s, load {row['load_before']:.1f} -> {row['load_after']:.1f}",
                    flush=True,
                )
    best = {
        side: max((r for r in rows if r["side"] == side), key=lambda r: r["docs_per_s"])
        for side in ("datatrove", "dask_prep")
    }
    ratio = best["dask_prep"]["docs_per_s"] / best["datatrove"]["docs_per_s"]
    result = {
        "corpus": corpus,
        "workers": workers,
        "rows": rows,
        "datatrove_docs_per_s": best["datatrove"]["docs_per_s"],
        "dask_prep_docs_per_s": best["dask_prep"]["docs_per_s"],
        "dask_prep_docs_per_s_without_startup": best["dask_prep"]["docs"]
        / best["dask_prep"]["seconds_without_startup"],
        "ratio": ratio,
        "target": TARGET,
        "target_met": ratio >= TARGET,
        # CPU seconds per document barely depend on what else runs on the machine
        "cpu_ratio": best["datatrove"]["cpu_seconds"] / best["dask_prep"]["cpu_seconds"],
        "same_kept_count": best["dask_prep"]["kept"] == best["datatrove"]["kept"],
    }
    if verbose:
        print(report(result))
    return result


def report(result: dict[str, Any]) -> str:
    dt, dp = result["datatrove_docs_per_s"], result["dask_prep_docs_per_s"]
    kept = {r["side"]: r["kept"] for r in result["rows"]}
    lines = [
        f"FineWeb-2 Korean quality filtering, datatrove with {result['workers']} workers, {result['corpus']}",
        f"  datatrove LocalPipelineExecutor  {dt:8.1f} docs/s   kept {kept['datatrove']}",
        f"  dask_prep fineweb2-ko (judged)   {dp:8.1f} docs/s   kept {kept['dask_prep']}"
        f"   [{next(r['layout'] for r in result['rows'] if r['side'] == 'dask_prep')}]"
        f"   ({result['dask_prep_docs_per_s_without_startup']:.1f} docs/s without cluster start-up)",
        f"  ratio {result['ratio']:.2f}x (target >= {result['target']}x): {'PASS' if result['target_met'] else 'FAIL'}"
        f"; CPU seconds per document, datatrove / dask_prep: {result['cpu_ratio']:.2f}x",
    ]
    if max(r["load_before"] for r in result["rows"]) > 1.0:
        lines.append("  note: the machine was busy (load average above 1) during the run; the figures are noisy")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/data/kowiki-hplt"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", help="save the result here")
    parser.add_argument("--side", choices=("datatrove", "dask_prep"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--logging-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # a child process: one side, result as JSON
        if args.side == "datatrove":
            row = run_datatrove(args.corpus, args.workers, args.logging_dir)
        else:
            row = run_dask_prep(args.corpus)
        Path(args.out).write_text(json.dumps(row))
        return 0
    result = compare(args.corpus, args.workers, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
