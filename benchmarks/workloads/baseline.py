"""The old single-machine design, re-implemented as the baseline (seed-v2 rules).

Its structure follows the script the project started from, not dask_prep's:
- a `multiprocessing.Pool` with one process per core, each building its Kiwi in the
  `initializer`;
- the main process reads the whole corpus into a list, drops exact duplicates in memory
  (the rules' dedup: same fingerprint, the smallest doc id kept; off with `--no-dedup`) and
  feeds `imap_unordered(quality_check_worker, ..., chunksize=500)`;
- every result is collected in a list in memory, and examples are built from it with a
  sequential `Counter` cap (first come, first kept);
- the examples are tokenized padded to `max_length` (on the same Pool, as the old
  script's `dataset.map(num_proc=...)` did), collected in memory, and written with
  `Dataset.from_dict(...).save_to_disk`.

The per-document rules, entity finding, candidate building and the masking/windowing of
one example are dask_prep's plain functions, so both designs produce the same examples
and differ only in how the work is organised.

    python benchmarks/workloads/baseline.py CORPUS --model TOKENIZER --output-dir DIR --result RESULT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from dask_prep.analysis.filters import FilterChain
from dask_prep.config import Config, preset
from dask_prep.coref.entities import Candidate, build_candidates, find_repeated_entities
from dask_prep.dedup.exact import fingerprint, first_of_repeated
from dask_prep.document import Document
from dask_prep.io.reading import parse_line, resolve_inputs

CHUNKSIZE = 500
TOKENIZE_CHUNK = 64  # examples per tokenization task

_kiwi: Any = None
_chain: FilterChain | None = None
_config: Config | None = None
_encoder: Any = None


def init_kiwi_worker(config: Config) -> None:
    """Pool initializer: one Kiwi per worker process, built once (as in the seed script)."""
    global _kiwi, _chain, _config
    from kiwipiepy import Kiwi

    _kiwi = Kiwi()
    _config = config
    _chain = FilterChain(config)


def quality_check_worker(item: tuple[str, str]) -> tuple[str, str, dict | None, str | None, int]:
    """(doc id, text, entities or None, rejecting rule, characters analysed by Kiwi)."""
    doc_id, text = item
    doc = Document(doc_id=doc_id, text=text, source="", line=0)
    if not _chain._apply(_chain.cheap, doc):
        return doc_id, text, None, doc.rejected_by, 0
    try:
        doc.tokens = _kiwi.tokenize(text)  # one document per call, as the old worker did
    except Exception:
        return doc_id, text, None, "analysis_error", len(text)
    if not _chain._apply(_chain.analysed, doc):
        return doc_id, text, None, doc.rejected_by, len(text)
    if doc.entities is None:  # the entity rule is switched off
        doc.entities = find_repeated_entities(doc.tokens, _config.entities)
    return doc_id, text, doc.entities, None, len(text)


def tokenize_worker(pairs: list[tuple[str, Candidate]]) -> tuple[dict[str, list], dict[str, int]]:
    """Padded rows for a chunk of examples, as plain Python columns."""
    global _encoder
    if _encoder is None:
        from dask_prep.coref.tokenization import ExampleTokenizer

        _encoder = ExampleTokenizer(_config.tokenize)
    dropped: dict[str, int] = {}
    columns: dict[str, list] = {}
    for batch in _encoder.encode(pairs, dropped):
        for name, values in batch.to_pydict().items():
            columns.setdefault(name, []).extend(values)
    return columns, dropped


def read_corpus(inputs: list[str], config: Config, max_samples: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """Every usable (id, text) of the corpus, in one list (the old script's raw_texts)."""
    import io

    import fsspec

    raw_texts: list[tuple[str, str]] = []
    malformed = 0
    for file in resolve_inputs(inputs):
        with fsspec.open(file.path, "rb", compression="infer") as handle:
            for number, raw in enumerate(io.BufferedReader(handle, buffer_size=1 << 20), 1):
                if max_samples is not None and len(raw_texts) + malformed >= max_samples:
                    break
                text, doc_id, reason = parse_line(raw, config.input.text_field, config.input.id_field)
                if reason is not None:
                    malformed += 1
                    continue
                raw_texts.append((str(doc_id) if doc_id is not None else f"{file.key}:{number}", text))
    return raw_texts, malformed


def drop_duplicates(raw_texts: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """The rules' exact dedup done the old way, in memory: (survivors in order, duplicates).

    The same fingerprint and the same survivor (`first_of_repeated`) as the pipeline's
    dedup, over one dict instead of a shuffle.
    """
    keys = [fingerprint(text) for _, text in raw_texts]
    groups: dict[int, list[tuple[int, str]]] = {}
    for (doc_id, _), key in zip(raw_texts, keys, strict=True):
        groups.setdefault(key, []).append((key, doc_id))
    keep = dict(filter(None, map(first_of_repeated, groups.items())))
    kept = [item for item, key in zip(raw_texts, keys, strict=True) if keep.get(key, item[0]) == item[0]]
    return kept, len(raw_texts) - len(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--model", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--result", required=True, help="where to write the timings (JSON)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--max-entity-freq", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-samples", type=int, help="read only the first N records (fixed-cost runs)")
    parser.add_argument("--no-dedup", dest="dedup", action="store_false", help="keep exact duplicates")
    args = parser.parse_args(argv)

    from multiprocessing import Pool

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = preset("seed-v2")
    config.tokenize.model = args.model
    config.tokenize.seq_len = args.seq_len
    config.tokenize.pad_to_max_length = True  # the old layout: every row padded to max_length
    config.entities.max_entity_freq = args.max_entity_freq
    seconds: dict[str, float] = {}
    t_start = time.perf_counter()

    # The Pool is started first, so its forked children do not inherit the corpus list.
    with Pool(processes=args.processes, initializer=init_kiwi_worker, initargs=(config,)) as pool:
        t = time.perf_counter()
        raw_texts, malformed = read_corpus(args.inputs, config, args.max_samples)
        seconds["read"] = time.perf_counter() - t
        read = len(raw_texts) + malformed
        rejected: Counter = Counter()
        if args.dedup:
            t = time.perf_counter()
            raw_texts, rejected["duplicate"] = drop_duplicates(raw_texts)
            seconds["dedup"] = time.perf_counter() - t

        t = time.perf_counter()
        results = []
        analysed_chars = analysed_docs = 0
        for doc_id, text, entities, reason, chars in pool.imap_unordered(
            quality_check_worker, raw_texts, chunksize=CHUNKSIZE
        ):
            if chars:
                analysed_docs += 1
                analysed_chars += chars
            if reason is None:
                results.append((doc_id, text, entities))
            else:
                rejected[reason] += 1
        seconds["filter"] = time.perf_counter() - t

        t = time.perf_counter()
        cap = config.entities.max_entity_freq
        entity_counter: Counter = Counter()
        all_examples: list[tuple[str, Candidate]] = []
        for doc_id, text, entities in results:
            for c in build_candidates(doc_id, entities, config.entities):
                if cap is None or entity_counter[c.target] < cap:
                    entity_counter[c.target] += 1
                    all_examples.append((text, c))
        seconds["examples"] = time.perf_counter() - t

        t = time.perf_counter()
        chunks = [all_examples[i : i + TOKENIZE_CHUNK] for i in range(0, len(all_examples), TOKENIZE_CHUNK)]
        columns: dict[str, list] = {}
        dropped: Counter = Counter()
        for chunk_columns, chunk_dropped in pool.imap(tokenize_worker, chunks):
            for name, values in chunk_columns.items():
                columns.setdefault(name, []).extend(values)
            dropped.update(chunk_dropped)
        seconds["tokenize"] = time.perf_counter() - t

    import datasets

    t = time.perf_counter()
    final = os.path.join(args.output_dir, f"entity_coref_v2_{args.seq_len}")
    dataset = datasets.Dataset.from_dict(columns)
    dataset.save_to_disk(final)
    seconds["save"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start

    result = {
        "read": read,
        "malformed": malformed,
        "rejected": dict(rejected.most_common()),
        "kept": len(results),
        "analysed_docs": analysed_docs,
        "analysed_chars": analysed_chars,
        "examples_after_cap": len(all_examples),
        "dropped": dict(dropped),
        "examples": dataset.num_rows,
        "dataset": final,
        "features": {name: str(feature) for name, feature in dataset.features.items()},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    with open(args.result, "w") as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "features"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
