"""Progressive analysis against whole-document analysis, in one process without Dask.

    python benchmarks/progressive_analysis.py --corpus ../shared/data/kowiki-hplt

Runs `FilterChain` over the corpus's partitions with one Kiwi, in full mode and in
progressive mode with several chunk bounds (`--max-chunks`), and with the chunk bound alone
(`no hint`: chunks of `MAX_CHUNK` characters ending at sentence ends, no pronoun hint).
For each: seconds, characters Kiwi analysed, documents decided on a prefix, and whether
the kept documents and their entities are exactly those of full analysis (and how many
decisions only moved from `nnp_ratio` to `pronoun`). Runs alternate (full first, then the
variants, then reversed) so that the host's drift falls on all of them.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from filter_phase import read_partitions  # noqa: E402

from dask_prep.analysis.filters import FilterChain, kiwi_analyser  # noqa: E402
from dask_prep.analysis.progressive import MAX_CHUNK  # noqa: E402
from dask_prep.config import preset  # noqa: E402


def judge(partitions, config, kiwi, variant: str):
    """(seconds, chain, {doc_id: rejected_by}, {doc_id: entities}) of one pass."""
    copies = copy.deepcopy(partitions)  # judging writes into the documents
    chain = FilterChain(config, progressive=variant != "full")
    if variant.startswith("progressive"):
        chain.max_chunk = int(variant.split()[-1])
    elif variant == "no hint":
        for rule in chain.early:
            rule.hint = None
    kept = {}
    started = time.perf_counter()
    for docs in copies:
        for doc in chain.run(docs, kiwi_analyser(kiwi)):
            kept[doc.doc_id] = sorted(doc.entities.items())
    seconds = time.perf_counter() - started
    return seconds, chain, {d.doc_id: d.rejected_by for docs in copies for d in docs}, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--shards", type=int, default=100, help="first N files of the corpus")
    parser.add_argument("--kiwi-threads", type=int, default=1)
    parser.add_argument("--max-chunks", default=f"300,{MAX_CHUNK},1000,100000")
    args = parser.parse_args(argv)

    from kiwipiepy import Kiwi

    config = preset("seed-v2")
    partitions = read_partitions(args.corpus, args.shards, config.input.partition_size)
    kiwi = Kiwi(num_workers=args.kiwi_threads)
    kiwi.tokenize("워밍업")  # the first call loads the rest of the model
    variants = ["full"] + [f"progressive {n}" for n in args.max_chunks.split(",")] + ["no hint"]
    results: dict[str, list] = {}
    for variant in variants + variants[::-1]:
        seconds, chain, decisions, kept = judge(partitions, config, kiwi, variant)
        results.setdefault(variant, []).append(seconds)
        if variant == "full":
            full_decisions, full_kept = decisions, kept
            line = f"{chain.analysed_docs:,} documents, {chain.analysed_chars:,} chars"
        else:
            moved = Counter((full_decisions[d], r) for d, r in decisions.items() if r != full_decisions[d])
            line = (
                f"Kiwi {chain.progress.kiwi_chars:,} chars ({chain.analysed_chars / chain.progress.kiwi_chars:.2f}x "
                f"fewer), {chain.progress.stopped_early:,} decided on a prefix, {chain.progress.chunks:,} chunks; "
                f"same kept documents and entities: {kept == full_kept}; decisions changed {dict(moved)}"
            )
        print(f"{variant:<20} {seconds:7.2f} s  {line}", flush=True)
    full = min(results["full"])
    print("\nbest of two, against full:")
    for variant, runs in results.items():
        print(f"  {variant:<20} {min(runs):7.2f} s  {full / min(runs):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
