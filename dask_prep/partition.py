"""What one task does to one partition — plain Python, no Dask.

Stage 1 (`analyse_partition`): read → quality filters → one Kiwi analysis → entities →
candidate examples, written to a parquet part, with counts and an entity summary for
the global cap. Stage 2 (`tokenize_partition`): apply the cap, tokenize, write the
output part. Both write atomically (temporary name, then rename), so a part that exists
is complete. Each returns a JSON-able stats dict that the report adds up.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.config import Config
from dask_prep.examples import (
    Candidate,
    build_candidates,
    passes_cap,
    summarize_entities,
)
from dask_prep.filters import FilterChain, kiwi_analyser
from dask_prep.kiwi_setup import get_kiwi
from dask_prep.reading import MALFORMED_REASONS, PartitionSpec, read_partition
from dask_prep.tokenization import ExampleTokenizer

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


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_atomically(table_or_batches: Any, schema: pa.Schema, path: str) -> int:
    """Write a parquet file under a temporary name, then rename; returns rows written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            batches = table_or_batches if not isinstance(table_or_batches, pa.Table) else [table_or_batches]
            for batch in batches:
                writer.write(batch) if isinstance(batch, pa.Table) else writer.write_batch(batch)
                rows += batch.num_rows
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return rows


def analyse_partition(spec: PartitionSpec, config: Config, work_dir: str, kiwi: Any = None) -> dict:
    """Stage 1 for one partition. Returns stats with an entity `summary` for the cap."""
    t0 = time.perf_counter()
    docs, damage = read_partition(spec, config.input.text_field, config.input.id_field)
    t_read = time.perf_counter()
    if kiwi is None:
        kiwi = get_kiwi()
    chain = FilterChain(config)
    kept = list(chain.run(docs, kiwi_analyser(kiwi)))
    t_filter = time.perf_counter()

    rows, keys = [], []
    n_candidates = n_entities = 0
    for doc in kept:
        cands = build_candidates(doc.doc_id, doc.entities, config.entities)
        n_entities += len(doc.entities)
        n_candidates += len(cands)
        keys.extend((c.target, c.key) for c in cands)
        rows.append(
            {
                "doc_id": doc.doc_id,
                "text": doc.text,
                "candidates": [
                    {
                        "target": c.target,
                        "antecedent_start": c.antecedent_start,
                        "antecedent_end": c.antecedent_end,
                        "start": c.start,
                        "end": c.end,
                        "key": c.key,
                    }
                    for c in cands
                ],
            }
        )
    write_atomically(
        pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA),
        CANDIDATE_SCHEMA,
        os.path.join(work_dir, "candidates", part_name(spec.index)),
    )
    stats = _decision_stats(spec, docs, damage)
    if stats["kept"] != len(kept):
        raise AccountingError(
            f"partition {spec.index}: {len(kept)} documents kept but {stats['kept']} counted"
        )
    stats.update(
        qualifying_entities=n_entities,
        candidates=n_candidates,
        summary=summarize_entities(keys, config.entities.max_entity_freq),
        seconds={
            "read": t_read - t0,
            "filter": t_filter - t_read,
            "entities": time.perf_counter() - t_filter,
        },
        analysed_docs=chain.analysed_docs,
        analysed_chars=chain.analysed_chars,
    )
    return stats


def _decision_stats(spec: PartitionSpec, docs: list, damage: str | None) -> dict:
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
    expected = spec.stop - spec.start
    if len(docs) != expected and damage is None:
        raise AccountingError(
            f"partition {spec.index} ({spec.file.key} records {spec.start}-{spec.stop}) "
            f"read {len(docs)} documents, expected {expected}"
        )
    return {
        "partition": spec.index,
        "source": spec.file.key,
        "read": len(docs),
        "malformed": dict(malformed),
        "malformed_locations": locations,
        "rejected": dict(rejected),
        "kept": kept,
        "damaged": {spec.file.key: damage} if damage else {},
    }


def iter_candidates(path: str, thresholds: dict[str, int]) -> Iterator[tuple[str, Candidate]]:
    """(text, candidate) pairs of a stage-1 part that pass the cap, in document order."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            for c in row["candidates"]:
                if passes_cap(c["target"], c["key"], thresholds):
                    yield (
                        row["text"],
                        Candidate(
                            row["doc_id"],
                            c["target"],
                            c["antecedent_start"],
                            c["antecedent_end"],
                            c["start"],
                            c["end"],
                            c["key"],
                        ),
                    )


def tokenize_partition(index: int, config: Config, work_dir: str, thresholds: dict[str, int]) -> dict:
    """Stage 2 for one partition: cap, tokenize, write the output part."""
    t0 = time.perf_counter()
    encoder = ExampleTokenizer(config.tokenize)
    dropped: dict[str, int] = {}
    pairs = list(iter_candidates(os.path.join(work_dir, "candidates", part_name(index)), thresholds))
    written = write_atomically(
        encoder.encode(pairs, dropped), encoder.schema, os.path.join(work_dir, "examples", part_name(index))
    )
    if written + sum(dropped.values()) != len(pairs):
        raise AccountingError(
            f"partition {index}: {len(pairs)} examples after the cap, "
            f"{written} written, {sum(dropped.values())} dropped"
        )
    return {
        "partition": index,
        "after_cap": len(pairs),
        "dropped": dropped,
        "examples": written,
        "seconds": {"tokenize": time.perf_counter() - t0},
    }
