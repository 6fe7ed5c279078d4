"""Near-dedup's cost (issue 31), runnable alone:

1. the shared corpus: `--repeat` pairs of default runs with and without `--no-near-dedup`, in
   alternating order; the added wall time of each pair, and its median (target <= 15 %);
2. a synthetic corpus (`dedup_scale.write_corpus`, default 1 M documents): wall time, the
   dedup stage's seconds per million documents, client and largest worker peak RSS.

    python benchmarks/near_dedup.py --corpus ../shared/data/kowiki-hplt \\
        --model ../shared/tokenizers/koelectra-v1-cased [--repeat 3] [--synthetic 1000000]

The JSON goes to benchmarks/results/near-dedup-*.json; note the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, load_average, python, run_measured  # noqa: E402
from dedup_scale import MIB, write_corpus  # noqa: E402


def run(inputs: list[str], out_dir: Path, model: str, extra: list[str]) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [python(), "-m", "dask_prep", "run", *inputs, "--output-dir", str(out_dir), "--model", model, "--quiet"]
    load = load_average()
    sample = run_measured(cmd + extra, log_path=str(out_dir) + ".log")
    if sample.returncode != 0:
        raise SystemExit(f"run failed ({sample.returncode}); see {out_dir}.log")
    report = json.loads((out_dir / "report.json").read_text())
    processes = sample.per_process.values()
    client = max(rss for parent, _, rss in processes if parent == os.getpid())
    return {
        "options": extra,
        "wall_s": round(sample.wall, 1),
        "dedup_s": report["seconds"].get("dedup"),
        "documents": report["documents"]["read"],
        "near_duplicate": report["rejected"].get("near_duplicate", 0),
        "near": report.get("near_duplicates"),
        "client_peak_mib": round(client / MIB),
        "largest_other_process_mib": round(max(rss for parent, _, rss in processes if parent != os.getpid()) / MIB),
        "tree_peak_mib": round(sample.peak_rss / MIB),
        "load_before": load,
    }


def shared_corpus(args: argparse.Namespace, work: Path) -> dict:
    pairs = []
    for k in range(args.repeat):
        roles = [("with", []), ("without", ["--no-near-dedup"])]
        found = {
            role: run([args.corpus], work / f"shared-{role}", args.model, extra)
            for role, extra in roles[:: 1 - 2 * (k % 2)]
        }
        added = found["with"]["wall_s"] / found["without"]["wall_s"] - 1
        pairs.append({"added": round(added, 3), **found})
        print(json.dumps(pairs[-1]), flush=True)
    return {"pairs": pairs, "median_added": round(statistics.median(p["added"] for p in pairs), 3)}


def synthetic(args: argparse.Namespace, work: Path) -> dict:
    corpus = write_corpus(work / f"corpus-{args.synthetic}", args.synthetic)
    row = run([str(corpus)], work / "synthetic", args.model, ["--n-workers", "2", "--threads-per-worker", "1"])
    row["dedup_s_per_million"] = round(row["dedup_s"] / row["documents"] * 1e6, 1)
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/kowiki-hplt")
    parser.add_argument("--model", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="documents (0: skip)")
    parser.add_argument("--only", default="shared,synthetic")
    parser.add_argument("--work-dir", default="/tmp/dask-prep-near-dedup")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"uptime_start": os.getloadavg()}
    if "shared" in args.only:
        result["shared"] = shared_corpus(args, work)
        print(f"near-dedup adds {result['shared']['median_added']:.1%} (median; target <= 15 %)")
    if "synthetic" in args.only and args.synthetic:
        result["synthetic"] = synthetic(args, work)
    result["uptime_end"] = os.getloadavg()
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    (results / f"near-dedup-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
