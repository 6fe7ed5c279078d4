"""`dask-prep derive` against a full run with the same options, side by side (issue 34).

    python benchmarks/derive.py --corpus ../shared/data/kowiki-hplt --model ../shared/tokenizers/koelectra-v1-cased

One full run (`--seq-len 2048`) makes the analysis to derive from. Then, `--repeats` times,
a pair made next to each other (their order alternates, so the host's drift falls on both):
a full `dask-prep run` with the derived options (`--seq-len 512` by default) and `dask-prep
derive` of the first run with the same options. Per pair: the stages' seconds (report.json
`seconds.total`, start-up excluded), the wall time of the command (start-up included), peak
RSS summed over the process tree, and whether the two datasets are equal row for row. Also
the analysis parts' bytes per kept document, with and without the stored Kiwi tokens.
Targets (medians of the pairs' ratios): stages <= 10 %, wall <= 35 %, derive's Kiwi chars 0.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, python, run_measured  # noqa: E402

STAGES_TARGET = 0.10
WALL_TARGET = 0.35


def _cli(*args: str) -> list[str]:
    return [python(), "-m", "dask_prep", "--quiet", *args]


def _measured(cmd: list[str], out: str, log_dir: str, name: str) -> dict:
    load = load_average()
    sample = run_measured(cmd, log_path=os.path.join(log_dir, f"{name}.log"))
    if sample.returncode != 0:
        raise SystemExit(f"{name} failed ({sample.returncode}): see {log_dir}/{name}.log")
    report = json.loads(Path(out, "report.json").read_text(encoding="utf-8"))
    return {
        "name": name,
        "wall": sample.wall,
        "stages": report["seconds"]["total"],
        "startup": report["seconds"].get("startup"),
        "seconds": report["seconds"],
        "kiwi_chars": report["analysis"]["kiwi_chars"],
        "examples": report["examples"]["written"],
        "peak_rss_mib": sample.peak_rss / 2**20,
        "load": round((load + load_average()) / 2, 2),
    }


def _rows(out: str):
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(out, "parquet", "*.parquet")))])


def part_bytes(run_dir: str) -> dict:
    """Bytes per kept document of the stage-1 parts (parquet zstd), and of them without the tokens."""
    parts = sorted(glob.glob(os.path.join(run_dir, "_work", "candidates", "*.parquet")))
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    with_tokens = sum(os.path.getsize(p) for p in parts)
    without = 0
    for path in parts:
        buffer = io.BytesIO()
        pq.write_table(pq.read_table(path, columns=["doc_id", "text", "candidates"]), buffer, compression="zstd")
        without += len(buffer.getvalue())
    return {
        "kept_documents": kept,
        "bytes_per_kept_doc": round(with_tokens / max(kept, 1)),
        "without_tokens": round(without / max(kept, 1)),
        "tokens": round((with_tokens - without) / max(kept, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", default="--seq-len 512", help="the derived options (default: --seq-len 512)")
    parser.add_argument("--work", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="dask-prep-derive-bench-")
    os.makedirs(work, exist_ok=True)
    options = args.options.split()
    source = os.path.join(work, "source")
    uptime = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    base = ["--model", args.model, "--overwrite"]
    first = _measured(_cli("run", args.corpus, *base, "--output-dir", source), source, work, "source")
    pairs = []
    for i in range(args.repeats):
        full_dir, derived_dir = os.path.join(work, f"full{i}"), os.path.join(work, f"derive{i}")
        full_cmd = _cli("run", args.corpus, *base, *options, "--output-dir", full_dir)
        derive_cmd = _cli("derive", source, *base, *options, "--output-dir", derived_dir)
        order = [("full", full_cmd, full_dir), ("derive", derive_cmd, derived_dir)]
        done = {
            kind: _measured(cmd, out, work, f"{kind}{i}") for kind, cmd, out in (order if i % 2 == 0 else order[::-1])
        }
        done["equal"] = _rows(full_dir).equals(_rows(derived_dir))
        pairs.append(done)
        uptime.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    _print(first, pairs, part_bytes(source), uptime, options)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"source": first, "pairs": pairs, "bytes": part_bytes(source), "uptime": uptime}, indent=1)
        )


def _print(first: dict, pairs: list[dict], sizes: dict, uptime: list[str], options: list[str]) -> None:
    print(f"derive benchmark: derived options {' '.join(options)}; source run stages {first['stages']:.1f} s")
    print(
        f"{'run':<10}{'wall s':>9}{'stages s':>10}{'startup s':>11}{'Kiwi chars':>12}"
        f"{'examples':>10}{'peak MiB':>10}{'load':>7}"
    )
    for i, pair in enumerate(pairs):
        for kind in ("full", "derive"):
            r = pair[kind]
            print(
                f"{kind + str(i):<10}{r['wall']:>9.1f}{r['stages']:>10.1f}{r['startup'] or 0:>11.1f}"
                f"{r['kiwi_chars']:>12,}{r['examples']:>10,}{r['peak_rss_mib']:>10,.0f}{r['load']:>7.2f}"
            )
        print(f"  derive stages: {pair['derive']['seconds']}; same dataset as the full run: {pair['equal']}")
    stages = statistics.median(p["derive"]["stages"] / p["full"]["stages"] for p in pairs)
    wall = statistics.median(p["derive"]["wall"] / p["full"]["wall"] for p in pairs)
    kiwi = max(p["derive"]["kiwi_chars"] for p in pairs)
    print(f"analysis parts: {sizes}")
    for line in uptime:
        print(f"uptime: {line}")
    print("Targets (median of the pairs' ratios):")
    print(
        f"  {'PASS' if stages <= STAGES_TARGET else 'FAIL'}  derive stages / full run stages  "
        f"{stages:.3f} (<= {STAGES_TARGET})"
    )
    print(
        f"  {'PASS' if wall <= WALL_TARGET else 'FAIL'}  derive wall / full run wall      {wall:.3f} (<= {WALL_TARGET})"
    )
    print(f"  {'PASS' if kiwi == 0 else 'FAIL'}  characters Kiwi analysed in derive {kiwi} (= 0)")
    print(f"  {'PASS' if all(p['equal'] for p in pairs) else 'FAIL'}  derived datasets equal the full runs'")


if __name__ == "__main__":
    main()
