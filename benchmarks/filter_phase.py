"""The filter phase against Kiwi alone, in one process without Dask, alternating.

    python benchmarks/filter_phase.py --corpus ../shared/data/kowiki-hplt --shards 3

`alone`: one `Kiwi(num_workers=2)` analysing, partition by partition, exactly the texts
that the cheap rules let through. `chain`: `FilterChain.run` on the same partitions with
the same Kiwi (cheap rules, Kiwi, the rules on the tokens, entities), as a stage-1 task
runs it. The difference is what the rules' Python costs next to Kiwi on busy cores.
Runs alternate A B B A A B so that the host's drift falls on both.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import texts_sent_to_kiwi  # noqa: E402

from dask_prep.analysis.filters import FilterChain, kiwi_analyser  # noqa: E402
from dask_prep.config import preset  # noqa: E402
from dask_prep.document import Document
from dask_prep.io.reading import PartitionReader, plan_partitions, resolve_inputs, scan_file  # noqa: E402


def read_partitions(corpus: str, shards: int, partition_size: int) -> list[list[Document]]:
    files = resolve_inputs([corpus])[:shards]
    specs = plan_partitions(files, [scan_file(f).records for f in files], partition_size, None, min_partitions=1)
    with PartitionReader("text", "id") as reader:
        return [reader.read(spec)[0] for spec in specs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--shards", type=int, default=3, help="first N files of the corpus")
    parser.add_argument("--partition-size", type=int, default=2000)
    parser.add_argument("--kiwi-threads", type=int, default=2)
    parser.add_argument("--preset", default="seed-v2")
    args = parser.parse_args(argv)

    from kiwipiepy import Kiwi

    config = preset(args.preset)
    partitions = read_partitions(args.corpus, args.shards, args.partition_size)
    # Judging writes into the documents: every pass gets fresh copies.
    texts = [texts_sent_to_kiwi(FilterChain(config, progressive=False), copy.deepcopy(docs)) for docs in partitions]
    print(
        f"{sum(map(len, partitions)):,} documents, {sum(map(len, texts)):,} to Kiwi, "
        f"{sum(len(t) for part in texts for t in part):,} chars"
    )
    kiwi = Kiwi(num_workers=args.kiwi_threads)
    kiwi.tokenize("워밍업")  # the first call loads the rest of the model

    def alone() -> None:
        for part in texts:
            for _ in kiwi.tokenize(part):
                pass

    def chain(copies: list[list[Document]]) -> None:
        for docs in copies:
            for _ in FilterChain(config).run(docs, kiwi_analyser(kiwi)):
                pass

    for name in ("alone", "chain", "chain", "alone", "alone", "chain"):
        copies = copy.deepcopy(partitions) if name == "chain" else []  # made before the clock starts
        wall, cpu = time.perf_counter(), time.process_time()
        if name == "alone":
            alone()
        else:
            chain(copies)
        print(f"{name:6s} wall {time.perf_counter() - wall:6.2f} s  CPU {time.process_time() - cpu:6.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
