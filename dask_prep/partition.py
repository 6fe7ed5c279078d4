"""What one task does to one partition — plain Python, no Dask.

Stage 1 (`analyse_partition`): read → quality filters → one Kiwi analysis → entities →
candidate examples, written to a parquet part, with counts and an entity summary for
the global cap. Stage 2 (`tokenize_partition`): apply the cap, tokenize, write the
output part. Both write atomically (temporary name, then rename), so a part that exists
is complete. Each returns a JSON-able stats dict that the report adds up.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.config import Config
from dask_prep.dedup import mark_duplicates
from dask_prep.examples import (
    Candidate,
    build_candidates,
    passes_cap,
    summarize_entities,
)
from dask_prep.filters import FilterChain, analysis_mode, kiwi_analyser, measured_distributions
from dask_prep.kiwi_setup import get_kiwi
from dask_prep.output import Layout, read_json, write_json_atomically
from dask_prep.reading import MALFORMED_REASONS, Document, PartitionReader, PartitionSpec, read_partition
from dask_prep.tokenization import ExampleTokenizer, PortableTokenizer

CANDIDATE_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("text", pa.string()),
        pa.field(
            "candidates",
            pa.list_(
                pa.struct(
                    [
                        pa.field("target", pa.string()),
                        pa.field("antecedent_start", pa.int32()),
                        pa.field("antecedent_end", pa.int32()),
                        pa.field("start", pa.int32()),
                        pa.field("end", pa.int32()),
                        pa.field("key", pa.int64()),
                    ]
                )
            ),
        ),
    ]
)
SAMPLE_LOCATIONS = 5  # first file:line locations kept per malformed reason


class AccountingError(RuntimeError):
    """read != malformed + rejected + kept: a bug, never to be written out as zeros."""


def write_atomically(batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema, path: str) -> int:
    """Write a parquet file under a temporary name, then rename; returns rows written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write(batch)
                rows += batch.num_rows
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return rows


def _reusable(layout: Layout, stage: str, index: int, parts: tuple[str, ...]) -> dict | None:
    """The stats of a partition finished by an earlier run, if all its files are there."""
    stats_path = layout.stats(stage, index)
    if os.path.exists(stats_path) and all(os.path.exists(layout.part(p, index)) for p in parts):
        stats = read_json(stats_path)
        stats["reused"] = True
        return stats
    return None


# After the rules' values in DIR/decisions: how the analysis rules saw the document
# ("whole", "prefix": decided early on a prefix; null: never analysed) and how many of its
# characters Kiwi analysed. The run's mode is in the schema metadata.
ANALYSIS_COLUMNS = (pa.field("analysis", pa.string()), pa.field("kiwi_chars", pa.int64()))
ANALYSIS_MODE_KEY = b"dask_prep.analysis_mode"


def decisions_schema(config: Config) -> pa.Schema:
    """One row per input record; one measured value per enabled rule (null if not reached or,
    for a document decided on a prefix, not measured), then `ANALYSIS_COLUMNS`."""
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("rejected_by", pa.string()),
        pa.field("chars", pa.int64()),
    ]
    fields += [pa.field(name, pa.float64()) for name, rule in config.rules.items() if rule.enabled]
    fields += ANALYSIS_COLUMNS
    return pa.schema(fields, metadata={ANALYSIS_MODE_KEY: analysis_mode(config).encode()})


def _decisions_table(docs: list[Document], schema: pa.Schema) -> pa.Table:
    metric_names = schema.names[5 : len(schema.names) - len(ANALYSIS_COLUMNS)]
    columns = {
        "doc_id": [d.doc_id for d in docs],
        "source": [d.source for d in docs],
        "line": [d.line for d in docs],
        "rejected_by": [d.rejected_by for d in docs],
        "chars": [len(d.text) if d.text is not None else None for d in docs],
    }
    for name in metric_names:
        columns[name] = [d.metrics.get(name) for d in docs]
    columns["analysis"] = [d.analysis for d in docs]
    columns["kiwi_chars"] = [d.kiwi_chars if d.analysis is not None else None for d in docs]
    return pa.Table.from_pydict(columns, schema=schema)


def analyse_partition(
    spec: PartitionSpec,
    config: Config,
    layout: Layout,
    *,
    duplicates: dict[int, str] | None = None,
    write_decisions: bool = True,
    reuse: bool = False,
    kiwi: Any = None,
    reader: PartitionReader | None = None,
) -> dict:
    """Stage 1 for one partition. Returns stats with an entity `summary` for the cap.

    `duplicates` maps the fingerprint of each duplicated text to the doc id to keep.
    With `reuse`, a partition that an earlier run finished is not computed again.
    `reader` reads the partition; one reader for consecutive partitions of a file reads
    that file once.
    """
    parts = ("candidates", "decisions") if write_decisions else ("candidates",)
    if reuse and (done := _reusable(layout, "analyse", spec.index, parts)) is not None:
        return done
    t0 = time.perf_counter()
    if reader is None:
        docs, damaged = read_partition(spec, config.input.text_field, config.input.id_field)
    else:
        docs, damaged = reader.read(spec)
    mark_duplicates(docs, duplicates or {})
    t_read = time.perf_counter()
    chain = FilterChain(config)
    kept = list(chain.run(docs, kiwi_analyser(kiwi or get_kiwi())))
    t_filter = time.perf_counter()

    rows, keys = [], []
    n_candidates = n_entities = 0
    for doc in kept:
        cands = build_candidates(doc.doc_id, doc.entities, config.entities)
        n_entities += len(doc.entities)
        n_candidates += len(cands)
        keys.extend((c.target, c.key) for c in cands)
        rows.append({"doc_id": doc.doc_id, "text": doc.text, "candidates": [c.as_record() for c in cands]})
    stats = _decision_stats(spec, docs, damaged)
    if stats["kept"] != len(kept):
        raise AccountingError(f"partition {spec.index}: {len(kept)} kept but {stats['kept']} counted")
    write_atomically(
        [pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)],
        CANDIDATE_SCHEMA,
        layout.part("candidates", spec.index),
    )
    if write_decisions:
        schema = decisions_schema(config)
        write_atomically([_decisions_table(docs, schema)], schema, layout.part("decisions", spec.index))
    stats.update(
        qualifying_entities=n_entities,
        candidates=n_candidates,
        summary=summarize_entities(keys, config.entities.max_entity_freq),
        distributions=measured_distributions(docs, config),
        seconds={
            "read": t_read - t0,
            "filter": t_filter - t_read,
            "entities": time.perf_counter() - t_filter,
        },
        analysed_docs=chain.analysed_docs,
        analysed_chars=chain.analysed_chars,
        analysis_mode=chain.mode,
        kiwi_chars=chain.progress.kiwi_chars,
        stopped_early=chain.progress.stopped_early,
        reused=False,
    )
    write_json_atomically(stats, layout.stats("analyse", spec.index))  # last: marks the partition done
    return stats


def _decision_stats(spec: PartitionSpec, docs: list, damaged: dict[str, str]) -> dict:
    malformed: Counter = Counter()
    rejected: Counter = Counter()
    locations: dict[str, list[str]] = {}
    for doc in docs:
        reason = doc.rejected_by
        if reason in MALFORMED_REASONS:
            malformed[reason] += 1
            where = locations.setdefault(reason, [])
            if len(where) < SAMPLE_LOCATIONS:
                where.append(f"{doc.source}:{doc.line}")
        elif reason is not None:
            rejected[reason] += 1
    kept = len(docs) - sum(malformed.values()) - sum(rejected.values())
    if len(docs) != spec.records and not damaged:
        raise AccountingError(
            f"partition {spec.index} ({', '.join(spec.sources)}) read {len(docs)} documents, expected {spec.records}"
        )
    return {
        "partition": spec.index,
        "source": ", ".join(dict.fromkeys(spec.sources)),
        "read": len(docs),
        "malformed": dict(malformed),
        "malformed_locations": locations,
        "rejected": dict(rejected),
        "kept": kept,
        "damaged": damaged,
    }


def iter_candidates(path: str, thresholds: dict[str, int]) -> Iterator[tuple[str, Candidate]]:
    """(text, candidate) pairs of a stage-1 part that pass the cap, in document order."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            for record in row["candidates"]:
                if passes_cap(record["target"], record["key"], thresholds):
                    yield row["text"], Candidate(doc_id=row["doc_id"], **record)


def thresholds_digest(thresholds: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(sorted(thresholds.items()), ensure_ascii=False).encode()).hexdigest()[:16]


def tokenize_partition(
    index: int,
    config: Config,
    layout: Layout,
    thresholds: dict[str, int],
    *,
    tokenizer: PortableTokenizer | None = None,
    reuse: bool = False,
) -> dict:
    """Stage 2 for one partition: cap, tokenize, write the output part.

    `tokenizer` is the one the client checked; None loads `config.tokenize.model` here.
    """
    digest = thresholds_digest(thresholds)
    if reuse and (done := _reusable(layout, "tokenize", index, ("examples",))) is not None:
        if done.get("thresholds") == digest:  # the cap decided the same; the part is valid
            return done
    t0 = time.perf_counter()
    encoder = ExampleTokenizer(config.tokenize, tokenizer)
    dropped: dict[str, int] = {}
    pairs = list(iter_candidates(layout.part("candidates", index), thresholds))
    written = write_atomically(encoder.encode(pairs, dropped), encoder.schema, layout.part("examples", index))
    if written + sum(dropped.values()) != len(pairs):
        raise AccountingError(
            f"partition {index}: {len(pairs)} examples after the cap, "
            f"{written} written, {sum(dropped.values())} dropped"
        )
    stats = {
        "partition": index,
        "after_cap": len(pairs),
        "dropped": dropped,
        "examples": written,
        "thresholds": digest,
        "seconds": {"tokenize": time.perf_counter() - t0},
        "reused": False,
    }
    write_json_atomically(stats, layout.stats("tokenize", index))
    return stats
