"""Speed and memory of dask-prep against the Kiwi limit and the old Pool design.

    python benchmarks/run.py --corpus ../shared/data/kowiki-hplt --model ../shared/tokenizers/koelectra-v1-cased

Runs, side by side in one invocation, each as a subprocess whose whole process tree is
sampled with psutil every 0.2 s:
  1. the Kiwi limit: Kiwi alone on exactly the documents the pipeline sends to Kiwi,
     in batch on all cores, both ways (one process with n Kiwi threads; n processes);
  2. the old design (benchmarks/workloads/baseline.py): Pool + imap_unordered + lists in
     memory + padded tokenization + Dataset.from_dict;
  3. `dask-prep run` with default cluster settings (cluster start-up included);
then the scale runs (the corpus repeated --scale times with new ids, for the baseline
and the pipeline; the pipeline with 1 and 2 workers, beside Kiwi alone in 1 and 2
processes: this host's own ceiling for that ratio), prints the table, the ratios and
PASS/FAIL per target (benchmarks/targets.toml), and saves everything as JSON under
benchmarks/results/.

`--layouts 2x1x1@2000,2x1x1@500,...` adds a layout comparison (workers x threads per
worker x Kiwi threads @ partition size) on the 1x corpus; `--only` picks sections.
Each section is a module of benchmarks/sections/ (how to add one: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import sections  # noqa: E402
from common import BENCH_DIR, kiwi_documents  # noqa: E402
from measure import Bench, row_json  # noqa: E402
from sections.scale import growth  # noqa: E402

from dask_prep.config import preset  # noqa: E402
from dask_prep.pipeline.cluster import ClusterOptions  # noqa: E402

SECTION_MODULES = sections.discover()
SECTIONS = tuple(name for module in SECTION_MODULES for name in module.NAMES)
DEFAULT_SECTIONS = tuple(name for module in SECTION_MODULES if module.DEFAULT for name in module.NAMES)


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--work-dir", help="scratch directory (default: a new temp dir, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the outputs of every run")
    parser.add_argument("--quiet-load", type=float, help="before each run wait until the load average is below this")
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait for --quiet-load at most")
    parser.add_argument("--results-dir", default=str(BENCH_DIR / "results"))
    for module in SECTION_MODULES:
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    return parser


def selected_sections(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    selected = {s for s in args.only.split(",") if s}
    if getattr(args, "layouts", ""):
        selected.add("layouts")
    unknown = selected - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return selected


def prepare(ctx: sections.Context) -> None:
    """The documents the pipeline sends to Kiwi: the limit's texts, and the check of the pipeline's count."""
    ctx.bench.log(f"selecting the documents the pipeline sends to Kiwi ({len(ctx.shards)} shards)")
    ctx.kiwi_set = kiwi_documents(ctx.shards, preset("seed-v2"))
    ctx.texts_path = ctx.work / "kiwi_texts.pkl"
    with open(ctx.texts_path, "wb") as handle:
        pickle.dump(ctx.kiwi_set.texts, handle)
    kiwi = ctx.kiwi_set
    ctx.bench.log(f"{kiwi.read:,} documents read, {len(kiwi.texts):,} to Kiwi, {kiwi.chars:,} chars")


def measure_all(ctx: sections.Context, modules: list[ModuleType] = SECTION_MODULES) -> dict[str, float | None]:
    """Every section's target values (a section that did not run measures None: SKIP)."""
    measured: dict[str, float | None] = {}
    for module in modules:
        if hasattr(module, "measure"):
            measured.update(module.measure(ctx))
    return measured


def summarise(ctx: sections.Context, ran: list[ModuleType], started: dt.datetime) -> tuple[str, list[dict]]:
    """The printed report and the targets' results."""
    rows = ctx.bench.rows
    default_workers = ClusterOptions().layout()[0]
    for row in rows.values():
        if row.kind == "pipeline" and "workers" not in row.details:
            options = row.details.get("options", [])
            row.details["workers"] = (
                int(options[options.index("--n-workers") + 1]) if "--n-workers" in options else default_workers
            )
    ctx.chosen = dict(rows)
    for role, repeat_names in ctx.repeats.items():
        runs = [rows[n] for n in repeat_names if n in rows]
        if runs:
            ctx.chosen[ctx.names[role]] = report.median_row(runs)
    ctx.ratios = report.paired_ratios(rows, ctx.paired)
    results = report.evaluate(report.load_targets(), measure_all(ctx), ctx.args.scale)
    limit = max((r.chars_per_s for r in rows.values() if r.kind == "limit"), default=None)
    order = [r for r in rows.values() if r.kind == "limit"]
    order += [rows[name] for name in ctx.names.values() if name in rows]
    order += [r for r in rows.values() if r not in order and r not in ctx.layout_rows]
    for module in ran:
        if hasattr(module, "report"):
            module.report(ctx, limit)
    kiwi, repeat = ctx.kiwi_set, ctx.args.repeat
    out = [
        f"dask-prep benchmark, {started:%Y-%m-%d %H:%M}, {ctx.cores} cores, {platform.node()}; "
        f"corpus {ctx.corpus} ({len(ctx.shards)} shards, {kiwi.read:,} docs; "
        f"{len(kiwi.texts):,} docs / {kiwi.chars:,} chars to Kiwi)",
        "",
        report.table(order, limit, ctx.row("baseline")),
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
        f"Targets (speed: the median of {repeat} ratios, each between runs made next to each other):"
        if repeat > 1
        else "Targets:",
        report.targets_text(results),
        report.kiwi_scaling_text(ctx.ratios),
        report.repeats_text(ctx.ratios),
        "",
        "Diagnostics:",
        report.diagnostics(order + [r for r in ctx.layout_rows if r not in order], growth(ctx)),
    ]
    for block in ctx.report_blocks:
        out += ["", block]
    if ctx.bench.failures:
        out += ["", "Failed runs:"] + [f"  {name}: {why}" for name, why in ctx.bench.failures.items()]
    ctx.payload["limit_chars_per_second"] = limit
    return "\n".join(out), results


def save(ctx: sections.Context, text: str, results: list[dict], started: dt.datetime) -> Path:
    results_dir = Path(ctx.args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"run-{started:%Y%m%d-%H%M%S}.json"
    kiwi = ctx.kiwi_set
    payload = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv,
        "cores": ctx.cores,
        "machine": platform.platform(),
        "corpus": {"shards": ctx.shards, "read": kiwi.read, "kiwi_docs": len(kiwi.texts), "kiwi_chars": kiwi.chars},
        "limit_chars_per_second": None,
        "rows": [row_json(r) for r in ctx.bench.rows.values()],
        "layouts": [],
        "targets": results,
        "fineweb_vs_datatrove": None,
        "failures": ctx.bench.failures,
        "table": text,
    }
    payload.update({key: value for key, value in ctx.payload.items() if key not in ("rows", "targets", "table")})
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    selected = selected_sections(parser, args)
    args.model = os.path.abspath(args.model) if os.path.exists(args.model) else args.model
    corpus = os.path.abspath(args.corpus)
    shards = sorted(str(p) for p in Path(corpus).iterdir() if p.name.endswith((".jsonl.zst", ".jsonl")))
    if args.max_shards:
        shards = shards[: args.max_shards]
    own_work = args.work_dir is None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="dask-prep-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = {role: name.format(scale=args.scale) for m in SECTION_MODULES for role, name in m.ROLES.items()}
    ctx = sections.Context(args, Bench(args, work), shards, corpus, work, os.cpu_count() or 1, names=names)
    started = dt.datetime.now()
    try:
        prepare(ctx)
        ran = [module for module in SECTION_MODULES if selected & set(module.NAMES)]
        for module in ran:
            module.run(ctx, selected)
        text, results = summarise(ctx, ran, started)
        print(text)
        print(f"\nresults: {save(ctx, text, results, started)}")
        failed = [t for t in results if t["result"] == "FAIL"]
        return 1 if failed or ctx.bench.failures else 0
    finally:
        if own_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
