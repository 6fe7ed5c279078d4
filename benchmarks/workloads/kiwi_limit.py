"""The Kiwi limit: Kiwi alone, analysing a list of texts in batch on all cores.

    python benchmarks/workloads/kiwi_limit.py TEXTS.pkl --mode threads --n 2 --out result.json
    python benchmarks/workloads/kiwi_limit.py TEXTS.pkl --mode processes --n 2 --out result.json

`threads`: one process, `Kiwi(num_workers=n).tokenize(texts)`.
`processes`: n processes, each `Kiwi(num_workers=1).tokenize(its share)` (as one Dask
worker does), shares balanced by characters; timed from a barrier after every Kiwi is
built to the last process finishing. Kiwi start-up is excluded in both: this is the
ceiling of the analysis itself.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common

from common import split_balanced  # noqa: E402


def _analyse_all(kiwi, texts: list[str]) -> int:
    tokens = 0
    for result in kiwi.tokenize(texts):
        tokens += len(result)
    return tokens


def run_threads(texts: list[str], n: int) -> dict:
    from kiwipiepy import Kiwi

    t = time.monotonic()
    kiwi = Kiwi(num_workers=n)
    kiwi.tokenize("워밍업")  # first call loads lazily initialised parts
    build = time.monotonic() - t
    t0 = time.monotonic()
    tokens = _analyse_all(kiwi, texts)
    return {"seconds": time.monotonic() - t0, "kiwi_build_seconds": build, "tokens": tokens}


def _child(texts: list[str], kiwi_threads: int, barrier, queue) -> None:
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=kiwi_threads)
    kiwi.tokenize("워밍업")
    barrier.wait()
    t0 = time.monotonic()
    tokens = _analyse_all(kiwi, texts)
    queue.put((t0, time.monotonic(), tokens, sum(len(t) for t in texts)))


def run_processes(texts: list[str], n: int, kiwi_threads: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(share, kiwi_threads, barrier, queue)) for share in split_balanced(texts, n)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    start = min(r[0] for r in results)
    return {
        "seconds": max(r[1] for r in results) - start,
        "per_process_seconds": [round(r[1] - r[0], 3) for r in results],
        "per_process_chars": [r[3] for r in results],
        "tokens": sum(r[2] for r in results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("texts", help="pickled list of texts")
    parser.add_argument("--mode", choices=["threads", "processes"], required=True)
    parser.add_argument("--n", type=int, required=True, help="Kiwi threads, or processes")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.texts, "rb") as handle:
        texts = pickle.load(handle)
    if args.mode == "threads":
        result = run_threads(texts, args.n)
    else:
        result = run_processes(texts, args.n)
    chars = sum(len(t) for t in texts)
    result.update(mode=args.mode, n=args.n, docs=len(texts), chars=chars)
    result["chars_per_second"] = chars / result["seconds"]
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
