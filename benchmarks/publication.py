"""Benchmark section `publication`: the workers' publication against the client's (issue 30).

Synthetic example parts of the real schema (real output parts of the shared corpus, copied
with new doc ids so that every part spans the whole doc-id range) at 100 k and 1 M rows go
through the real publication path (`pipeline.publication.publish_dataset`) on a LocalCluster
of 1 and of 2 workers, and through today's client publication (`output.publish.write_dataset`)
as the baseline, side by side in one run. Each measurement is one subprocess whose tree is
sampled: wall time of the publication call, client peak RSS, workers' peak RSS, the tree's
summed peak, and the bytes the client process wrote to its disk (/proc/PID/io write_bytes).

    python benchmarks/publication.py --corpus ../shared/data/kowiki-hplt \
        --model ../shared/tokenizers/koelectra-v1-cased

writes benchmarks/results/publication-<time>.json. Needs about 6 × (rows × 4.6 KB) of disk
under --work at the largest size (parts, pieces, dataset, parquet shards, the baseline's cache).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, load_average, python, run_measured  # noqa: E402

SEQ_LEN = 2048
ROWS_PER_PART = 2000


def source_parts(corpus: str, model: str, work: str, max_samples: int) -> list[str]:
    """Real output parts: a real run over the first `max_samples` documents of the corpus."""
    out = os.path.join(work, "source-run")
    parts = sorted(glob.glob(os.path.join(out, "_work", "examples", "*.parquet")))
    if parts:
        return parts
    cmd = [python(), "-m", "dask_prep", "--quiet", "run", corpus, "--model", model, "--seq-len", str(SEQ_LEN)]
    cmd += ["--max-samples", str(max_samples), "--output-dir", out, "--overwrite", "--no-decisions"]
    subprocess.run(cmd, check=True, cwd=REPO)
    return sorted(glob.glob(os.path.join(out, "_work", "examples", "*.parquet")))


def held_out_sized(real, bytes_per_row: int):
    """The real rows without the longest examples, until their mean Arrow size is `bytes_per_row`
    (the held-out corpus's; the shared corpus's Wikipedia articles give longer ones)."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(real.column("input_ids"))
    order = pc.sort_indices(lengths).to_pylist()
    keep = len(order)
    while keep > 1 and real.take(order[:keep]).nbytes / keep > bytes_per_row:
        keep = int(keep * 0.97)
    return real.take(sorted(order[:keep]))


def synthetic_parts(sources: list[str], rows: int, dest: str, bytes_per_row: int = 4600) -> dict:
    """`rows` example rows as parts of ROWS_PER_PART: copies of the real rows, each copy's doc
    ids prefixed by a hash of the copy number (so parts are not in doc-id order)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    real = held_out_sized(pa.concat_tables([pq.read_table(p) for p in sources]).combine_chunks(), bytes_per_row)
    written, copy, part, pending = 0, 0, 0, []
    while written < rows:
        take = min(real.num_rows, rows - written)
        prefix = hashlib.blake2b(str(copy).encode(), digest_size=6).hexdigest() + ":"
        table = real.slice(0, take)
        ids = pc.binary_join_element_wise(pa.scalar(prefix), table.column("doc_id"), "")
        pending.append(table.set_column(table.schema.get_field_index("doc_id"), "doc_id", ids))
        written += take
        copy += 1
        held = sum(t.num_rows for t in pending)
        while held >= ROWS_PER_PART or (written >= rows and held):
            block = pa.concat_tables(pending)
            path = os.path.join(dest, f"part-{part:05d}.parquet")
            pq.write_table(block.slice(0, ROWS_PER_PART), path, compression="zstd")
            pending = [block.slice(ROWS_PER_PART)] if block.num_rows > ROWS_PER_PART else []
            held = block.num_rows - min(block.num_rows, ROWS_PER_PART)
            part += 1
    return {"rows": rows, "parts": part, "arrow_bytes_per_row": round(real.nbytes / real.num_rows)}


def _layout_for(parts_dir: str, out: str) -> list[int]:
    """An output directory whose _work/examples are the synthetic parts (hard links, no copy)."""
    shutil.rmtree(out, ignore_errors=True)
    examples = os.path.join(out, "_work", "examples")
    os.makedirs(examples)
    names = sorted(os.listdir(parts_dir))
    for name in names:
        os.link(os.path.join(parts_dir, name), os.path.join(examples, name))
    return [int(name[5:10]) for name in names]


def one(mode: str, workers: int, parts_dir: str, out: str) -> None:
    """The measured subprocess: one publication; prints its JSON line."""
    from dask_prep.output.layout import Layout

    indices = _layout_for(parts_dir, out)
    layout = Layout(out)
    if mode == "baseline":
        from dask_prep.output.publish import write_dataset

        t0 = time.perf_counter()
        write_dataset(layout, indices, SEQ_LEN)
        seconds = time.perf_counter() - t0
        written = _written_bytes()
    else:
        from dask.distributed import Client, LocalCluster

        from dask_prep.pipeline.publication import publish_dataset

        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:
            with Client(cluster):
                t0 = time.perf_counter()
                publish_dataset(layout, indices, SEQ_LEN)
                seconds = time.perf_counter() - t0
                written = _written_bytes()  # before the workers exit: reaped, theirs would count here
    import resource

    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": round(seconds, 2),
                "client_write_bytes": written,
                "client_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def _written_bytes() -> int:
    """Bytes this process (and its reaped children) sent to the disk so far."""
    with open("/proc/self/io") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["write_bytes"])


def wait_for_memory(needed: int, patience: float = 900) -> bool:
    """Whether `needed` bytes (plus 1 GiB to spare) are available, waiting up to `patience` s:
    the machine is shared, and the client publication's RSS grows with the dataset."""
    import psutil

    deadline = time.monotonic() + patience
    while psutil.virtual_memory().available < needed + (1 << 30):
        if time.monotonic() > deadline:
            return False
        time.sleep(10)
    return True


def measure(mode: str, workers: int, parts_dir: str, out: str, logs: str, rows: int) -> dict:
    # The client publication's RSS is about the dataset's Arrow bytes; each worker's about a shard's few times.
    needed = rows * 5000 if mode == "baseline" else workers * (1 << 30)
    if not wait_for_memory(needed):
        return {"mode": mode, "workers": workers, "skipped": f"less than {needed >> 20} MiB + 1 GiB available"}
    cmd = [python(), __file__, "_one", mode, str(workers), parts_dir, out]
    log = os.path.join(logs, f"{mode}-{workers}-{os.path.basename(parts_dir)}.log")
    load = load_average()
    tree = run_measured(cmd, log_path=log)
    if tree.returncode != 0:
        raise SystemExit(f"{mode} ({workers} workers) failed: see {log}")
    line = next(x for x in Path(log).read_text().splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    others = [peak for pid, (_, _, peak) in tree.per_process.items() if pid != tree_root(tree)]
    result.update(
        mode=mode,
        workers=workers if mode == "cluster" else 0,
        tree_peak_rss=tree.peak_rss,
        workers_peak_rss=sum(others),
        load_before=round(load, 2),
        dataset_rows=_rows(out),
    )
    shutil.rmtree(out, ignore_errors=True)
    return result


def tree_root(tree) -> int:
    """The subprocess itself: the one member whose parent is not in the tree."""
    return next(pid for pid, (parent, _, _) in tree.per_process.items() if parent not in tree.per_process)


def _rows(out: str) -> int:
    import datasets

    return len(datasets.load_from_disk(os.path.join(out, f"entity_coref_v2_{SEQ_LEN}")))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        one(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "kowiki-hplt"))
    parser.add_argument("--model", default=str(REPO.parent / "shared" / "tokenizers" / "koelectra-v1-cased"))
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--source-documents", type=int, default=3000)
    parser.add_argument("--work", default="/tmp/dask-prep-publication-bench")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    sources = source_parts(args.corpus, args.model, args.work, args.source_documents)
    report: dict = {"section": "publication", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["uptime_before"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    report["sizes"] = []
    path = os.path.join(args.results, f"publication-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json")
    for rows in args.rows:
        parts_dir = os.path.join(args.work, f"parts-{rows}")
        size = synthetic_parts(sources, rows, parts_dir)
        out = os.path.join(args.work, f"out-{rows}")
        size["runs"] = [
            measure(mode, workers, parts_dir, out, args.work, rows)
            for mode, workers in (("cluster", 1), ("cluster", 2), ("baseline", 0))
        ]
        shutil.rmtree(parts_dir, ignore_errors=True)
        runs = {(r["mode"], r["workers"]): r.get("seconds") for r in size["runs"]}
        two = runs[("cluster", 2)]
        size["two_vs_one_worker"] = round(runs[("cluster", 1)] / two, 2) if two and runs[("cluster", 1)] else None
        size["two_workers_vs_client"] = round(runs[("baseline", 0)] / two, 2) if two and runs[("baseline", 0)] else None
        report["sizes"].append(size)
        print(json.dumps(size, indent=1), flush=True)
        _save(report, path)  # after each size: the 1 M rows take long on a busy machine
    if len(report["sizes"]) > 1:
        first, last = report["sizes"][0], report["sizes"][-1]
        two = [next(r.get("seconds") for r in s["runs"] if r["workers"] == 2) for s in (first, last)]
        report["largest_vs_smallest_2_workers"] = round(two[1] / two[0], 2) if all(two) else None
    report["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    _save(report, path)
    print(path)


def _save(report: dict, path: str) -> None:
    with open(path, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
