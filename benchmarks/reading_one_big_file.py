"""Reading one big compressed file split into many partitions: one partition at a time vs one reader.

    python benchmarks/reading_one_big_file.py --corpus ../shared/data/kowiki-hplt --copies 8

Writes the corpus's lines `--copies` times into one .jsonl.zst (a large HPLT shard stands
in), plans partitions of `--partition-size`, and times reading them all three ways, in one
process, alternating: `read_partition` for each partition (each starts decompressing at the
top of the file), one `PartitionReader` through all of them, and readers over groups of
`MAX_SPECS_PER_TASK` partitions (what a stage-1 task does when partitions are grouped).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dask_prep.io.reading import PartitionReader, plan_partitions, read_partition, resolve_inputs, scan_file  # noqa: E402
from dask_prep.pipeline.graph import MAX_SPECS_PER_TASK  # noqa: E402


def write_big_file(corpus: str, copies: int, path: str) -> None:
    import zstandard

    data = b""
    for shard in sorted(glob.glob(os.path.join(corpus, "*.jsonl.zst"))):
        with open(shard, "rb") as handle, zstandard.ZstdDecompressor().stream_reader(handle) as stream:
            data += stream.read()
    with open(path, "wb") as out:
        out.write(zstandard.ZstdCompressor(level=3).compress(data * copies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True, help="a directory of .jsonl.zst shards")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--partition-size", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.jsonl.zst")
        write_big_file(args.corpus, args.copies, path)
        files = resolve_inputs([path])
        records = scan_file(files[0]).records
        specs = plan_partitions(files, [records], args.partition_size)
        groups = [specs[i : i + MAX_SPECS_PER_TASK] for i in range(0, len(specs), MAX_SPECS_PER_TASK)]

        def one_at_a_time() -> int:
            return sum(len(read_partition(s, "text", "id")[0]) for s in specs)

        def one_reader() -> int:
            with PartitionReader("text", "id") as reader:
                return sum(len(reader.read(s)[0]) for s in specs)

        def grouped() -> int:
            total = 0
            for group in groups:
                with PartitionReader("text", "id") as reader:
                    total += sum(len(reader.read(s)[0]) for s in group)
            return total

        print(f"{records:,} lines in one .jsonl.zst, {len(specs)} partitions of {args.partition_size:,}")
        for way in (one_at_a_time, one_reader, grouped, grouped, one_reader, one_at_a_time):
            start = time.perf_counter()
            read = way()
            seconds = time.perf_counter() - start
            if read != records:
                raise SystemExit(f"{way.__name__} read {read} documents, expected {records}")
            label = f"{way.__name__} ({len(groups)} groups)" if way is grouped else way.__name__
            print(f"  {label:<28} {seconds:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
