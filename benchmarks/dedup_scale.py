"""Dedup scale-out (issue 30): client and whole-tree peak RSS at 100 k and 1 M documents.

Regenerates the synthetic dedup corpora (short documents, 20 % exact copies, every
document rejected by the length rule before Kiwi, so the run is read + dedup + reports)
and runs `python -m dask_prep run` on each, sampling the process tree (`common.run_measured`).
Client peak RSS is the CLI process's own; whole tree is the largest sum over every process
(scheduler, workers, nannies, client) at one sample.

    python benchmarks/dedup_scale.py --model ../shared/tokenizers/koelectra-v1-cased \\
        [--sizes 100000,1000000] [--repo PATH_OF_ANOTHER_CHECKOUT] [--work-dir DIR]

`--repo` runs another checkout's dask_prep on the same corpora (e.g. `git archive main`
unpacked), for a side-by-side. Targets: client peak at 1 M / at 100 k <= 1.2, tree <= 1.3.
The JSON goes to benchmarks/results/dedup-scale-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, load_average, python, run_measured  # noqa: E402

MIB = 1 << 20
FILES = 8
COPY_SHARE = 0.2
SEED = 30


def write_corpus(dest: Path, documents: int, copy_share: float = COPY_SHARE, seed: int = SEED) -> Path:
    """`documents` short Hangul documents in FILES .jsonl.zst files; `copy_share` of them exact
    copies (new id, same text) of other documents. Reused when already written."""
    import zstandard

    done = dest / "DONE"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    originals = documents - int(documents * copy_share)
    copies = np.random.default_rng(seed).integers(0, originals, size=documents - originals)
    order = np.random.default_rng(seed + 1).permutation(documents)  # copies spread among files
    per_file = -(-documents // FILES)
    for k in range(FILES):
        with open(dest / f"{k:05d}.jsonl.zst", "wb") as raw:
            writer = zstandard.ZstdCompressor(level=3).stream_writer(raw)
            for position in order[k * per_file : (k + 1) * per_file].tolist():
                source = position if position < originals else int(copies[position - originals])
                line = {"id": f"d{position:08d}", "text": _text(seed, source)}
                writer.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
            writer.flush(zstandard.FLUSH_FRAME)
    done.write_text(str(documents))
    return dest


def _text(seed: int, index: int) -> str:
    """Document `index`'s text, made from its own seed (no corpus-sized array in memory):
    60-200 syllables of the Hangul block with spaces, far below the length rule's 800."""
    rng = np.random.default_rng([seed, index])
    codes = rng.integers(0xAC00, 0xD7A4, size=int(rng.integers(60, 200)), dtype=np.uint32)
    codes[rng.random(codes.size) < 0.2] = 0x20
    return codes.astype("<u4").tobytes().decode("utf-32-le")


def measure(corpus: Path, out_dir: Path, model: str, repo: Path, workers: int, extra: list[str]) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [python(), "-m", "dask_prep", "run", str(corpus), "--output-dir", str(out_dir), "--model", model]
    cmd += ["--quiet", "--n-workers", str(workers), "--threads-per-worker", "1", *extra]
    env = dict(os.environ, PYTHONPATH=str(repo))
    load = load_average()
    sample = run_measured(cmd, log_path=str(out_dir) + ".log", env=env)
    if sample.returncode != 0:
        raise SystemExit(f"run failed ({sample.returncode}); see {out_dir}.log")
    report = json.loads((out_dir / "report.json").read_text())
    # The CLI is the one process of the tree whose parent is this one.
    client = max(rss for parent, _, rss in sample.per_process.values() if parent == os.getpid())
    return {
        "documents": report["documents"]["read"],
        "duplicates": report["rejected"].get("duplicate", 0),
        "wall_s": round(sample.wall, 1),
        "dedup_s": report["seconds"].get("dedup"),
        "client_peak_mib": round(client / MIB),
        "tree_peak_mib": round(sample.peak_rss / MIB),
        "load_before": load,
        "uptime_after": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repo", default=str(BENCH_DIR.parent), help="checkout whose dask_prep runs")
    parser.add_argument("--work-dir", default="/tmp/dask-prep-dedup-scale")
    parser.add_argument("--extra", default="", help="more options for every run, e.g. '--no-near-dedup'")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        corpus = write_corpus(work / f"corpus-{size}", size)
        found = measure(corpus, work / f"out-{size}", args.model, Path(args.repo), args.workers, args.extra.split())
        row = {"size": size, **found}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"repo": args.repo, "extra": args.extra, "rows": rows}
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        result["client_growth"] = round(large["client_peak_mib"] / small["client_peak_mib"], 3)
        result["tree_growth"] = round(large["tree_peak_mib"] / small["tree_peak_mib"], 3)
        print(f"client peak growth {result['client_growth']} (target <= 1.2); tree {result['tree_growth']} (<= 1.3)")
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"dedup-scale-{stamp}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
