"""What one task does to one partition — plain Python, no Dask.

Stage 1 (`analyse_partition`): read → quality filters → one Kiwi analysis → entities →
candidate examples, written to a parquet part, with counts and an entity summary for
the global cap. Stage 2 (`tokenize_partition`): apply the cap, tokenize, write the
output part. Both write atomically (temporary name, then rename; on an object store, one
request under the final name), so a part that exists is complete. Each returns its
partition's stats (`dask_prep.stats`), also written beside its parts, which the report adds up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.analysis.filters import FilterChain, analysis_mode, measured_distributions
from dask_prep.analysis.isolation import analyser_for
from dask_prep.analysis.kiwi import get_kiwi
from dask_prep.config import Config
from dask_prep.coref.entities import Candidate, passes_cap, summarize_entities
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT, decode_tokens, document_entities
from dask_prep.coref.tokenization import ExampleTokenizer
from dask_prep.coref.tokenizer import PortableTokenizer
from dask_prep.dedup.exact import mark_duplicates
from dask_prep.document import Document
from dask_prep.io import storage
from dask_prep.io.reading import PartitionReader, PartitionSpec, read_partition
from dask_prep.output.layout import Layout, read_json
from dask_prep.pipeline.timing import Stopwatch
from dask_prep.stats import AccountingError, AnalysisStats, Coverage, PartRecord, TokenizeStats, decision_stats

CANDIDATE_FIELDS = [
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
# Each kept document's Kiwi tokens (`coref.kept_analysis`), what `derive` makes candidates from
# again; the parts' metadata names their layout's version.
TOKENS_FIELD = pa.field(
    "tokens",
    pa.struct(
        [
            pa.field("form", pa.list_(pa.string())),  # null where it is the text it covers
            pa.field("tag", pa.list_(pa.string())),
            pa.field("start", pa.list_(pa.int32())),
            pa.field("len", pa.list_(pa.int32())),
        ]
    ),
)
ANALYSIS_FORMAT_KEY = b"dask_prep.analysis_format"
CANDIDATE_SCHEMA = pa.schema(
    [*CANDIDATE_FIELDS, TOKENS_FIELD], metadata={ANALYSIS_FORMAT_KEY: str(ANALYSIS_FORMAT).encode()}
)
# A derived run's candidates: no tokens (they stay in the run it derives from).
DERIVED_CANDIDATE_SCHEMA = pa.schema(CANDIDATE_FIELDS)


def write_atomically(batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema, path: str) -> int:
    """Write a parquet file whole (`storage.writing`), so a part that exists is complete; returns rows written."""
    rows = 0
    with storage.writing(path) as handle, pq.ParquetWriter(handle, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write(batch)
            rows += batch.num_rows
    return rows


def part_record(path: str) -> PartRecord:
    """What a finished part is (written into its partition's stats): rows and a content hash."""
    digest = hashlib.sha256()
    with storage.open_read(path) as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
        handle.seek(0)
        rows = pq.ParquetFile(handle).metadata.num_rows
    return PartRecord(rows=rows, sha256=digest.hexdigest())


Stats = AnalysisStats | TokenizeStats
_STATS: dict[str, type[Stats]] = {"analyse": AnalysisStats, "tokenize": TokenizeStats}


def completed_partition(
    layout: Layout, stage: str, index: int, parts: tuple[str, ...]
) -> tuple[Stats | None, str | None]:
    """Is this partition's result from an earlier run reusable? (stats, None) if so; else (None, why not).

    Reusable means finished (its stats file exists) with every part exactly what the stats
    record (rows and content hash). A part that differs (swapped, truncated, rewritten) is
    never trusted: the partition is computed again and its new stats say why
    (`replaced_on_resume`). (None, None): it was simply not finished.
    """
    stats_path = layout.stats(stage, index)
    if not storage.exists(stats_path):
        return None, None
    try:
        data = read_json(stats_path)
    except (OSError, ValueError) as exc:
        return None, f"its stats file is unreadable ({type(exc).__name__})"
    stats = _STATS[stage].from_json(data)
    records = stats.parts
    for kind in parts:
        path = layout.part(kind, index)
        if not storage.exists(path):
            return None, f"{kind} part is missing"
        if kind not in records:
            return None, f"no record of its {kind} part"
        try:
            found = part_record(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors or OSErrors
            return None, f"{kind} part is unreadable ({type(exc).__name__})"
        if found != records[kind]:
            return None, f"{kind} part differs from its record (rows {found.rows} vs {records[kind].rows})"
    stats.reused = True
    return stats, None


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
    resume: bool = False,
    kiwi: Any = None,
    reader: PartitionReader | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    isolate: bool = False,
) -> AnalysisStats:
    """Stage 1 for one partition. Returns its stats, with an entity `summary` for the cap.

    `duplicates` maps the fingerprint of each duplicated text to the doc id to keep.
    With `resume`, a partition that an earlier run finished is not computed again.
    `reader` reads the partition; one reader for consecutive partitions of a file reads
    that file once. `on_progress(judged, kept)` is called as documents are judged (see
    `FilterChain.run`). With `isolate` (an earlier attempt's process died on this partition),
    each document is analysed in a child process of its own (`dask_prep.analysis.isolation`).
    """
    parts = ("candidates", "decisions") if write_decisions else ("candidates",)
    done, replaced = completed_partition(layout, "analyse", spec.index, parts) if resume else (None, None)
    if done is not None:
        return done
    clock = Stopwatch()
    with clock.stage("read"):
        if reader is None:
            docs, damaged = read_partition(spec, config.input.text_field, config.input.id_field)
        else:
            docs, damaged = reader.read(spec)
        mark_duplicates(docs, duplicates or {})
    with clock.stage("filter"):
        chain = FilterChain(config)
        analyse = analyser_for(kiwi or get_kiwi(), config.input.analysis_timeout, isolate)
        kept = list(chain.run(docs, analyse, on_progress))
    with clock.stage("entities"):
        stats = _entity_stats(spec, docs, damaged, kept, config, layout, parts, write_decisions)
    stats = dataclasses.replace(
        stats,
        replaced_on_resume=replaced,
        seconds=clock.seconds,
        analysed_docs=chain.analysed_docs,
        analysed_chars=chain.analysed_chars,
        isolated=isolate,
        analysis_mode=chain.mode,
        kiwi_chars=chain.progress.kiwi_chars,
        stopped_early=chain.progress.stopped_early,
    )
    storage.write_json(stats.to_json(), layout.stats("analyse", spec.index))  # last: marks the partition done
    return stats


def _entity_stats(
    spec: PartitionSpec,
    docs: list[Document],
    damaged: dict[str, str],
    kept: list[Document],
    config: Config,
    layout: Layout,
    parts: tuple[str, ...],
    write_decisions: bool,
) -> AnalysisStats:
    """The kept documents' candidates and the decisions written; the partition's counts and summary."""
    stats = decision_stats(spec, docs, damaged)
    if stats.kept != len(kept):
        raise AccountingError(f"partition {spec.index}: {len(kept)} kept but {stats.kept} counted")
    rows = [{"doc_id": d.doc_id, "text": d.text, "tokens": d.kept_tokens} for d in kept]
    keys = add_candidates(rows, config, stats)
    write_atomically(
        [pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)],
        CANDIDATE_SCHEMA,
        layout.part("candidates", spec.index),
    )
    if write_decisions:
        schema = decisions_schema(config)
        write_atomically([_decisions_table(docs, schema)], schema, layout.part("decisions", spec.index))
    return dataclasses.replace(
        stats,
        parts={kind: part_record(layout.part(kind, spec.index)) for kind in parts},
        summary=summarize_entities(keys, config.entities.max_entity_freq),
        distributions=measured_distributions(docs, config),
    )


def add_candidates(rows: list[dict[str, Any]], config: Config, stats: AnalysisStats) -> list[tuple[str, int]]:
    """The entity step on stage-1 rows (doc_id, text, tokens): sets each row's `candidates` and
    counts them into `stats`; returns (target, key) of every candidate, for the cap's summary.

    `run` calls it on the documents Kiwi just kept, `derive` on the rows a run stored.
    """
    keys = []
    for row in rows:
        found = document_entities(
            row["doc_id"], row["text"], decode_tokens(row["text"], row["tokens"]), config.entities
        )
        stats.qualifying_entities += found.qualifying
        stats.example_entities += found.giving_examples
        stats.candidates += len(found.candidates)
        stats.kept_without_examples += not found.candidates
        keys.extend((c.target, c.key) for c in found.candidates)
        row["candidates"] = [c.as_record() for c in found.candidates]
    return keys


def iter_candidates(path: str, thresholds: dict[str, int]) -> Iterator[tuple[str, Candidate]]:
    """(text, candidate) pairs of a stage-1 part that pass the cap, in document order."""
    with storage.open_read(path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=256, columns=["doc_id", "text", "candidates"]):
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
    resume: bool = False,
) -> TokenizeStats:
    """Stage 2 for one partition: cap, tokenize, write the output part.

    `tokenizer` is the one the client checked; None loads `config.tokenize.model` here.
    """
    digest = thresholds_digest(thresholds)
    candidates = part_record(layout.part("candidates", index))  # what this partition's examples come from
    done, replaced = completed_partition(layout, "tokenize", index, ("examples",)) if resume else (None, None)
    # Reusable only if the cap decided the same, from the same stage-1 part.
    if done is not None and done.thresholds == digest and done.candidates == candidates:
        return done
    clock = Stopwatch()
    with clock.stage("tokenize"):
        encoder = ExampleTokenizer(config.tokenize, tokenizer)
        dropped: dict[str, int] = {}
        pairs = list(iter_candidates(layout.part("candidates", index), thresholds))
        written = write_atomically(encoder.encode(pairs, dropped), encoder.schema, layout.part("examples", index))
    if written + sum(dropped.values()) != len(pairs):
        raise AccountingError(
            f"partition {index}: {len(pairs)} examples after the cap, "
            f"{written} written, {sum(dropped.values())} dropped"
        )
    stats = TokenizeStats(
        partition=index,
        parts={"examples": part_record(layout.part("examples", index))},
        candidates=candidates,
        after_cap=len(pairs),
        dropped=dropped,
        examples=written,
        thresholds=digest,
        coverage=Coverage(**encoder.coverage()),
        seconds=clock.seconds,
        replaced_on_resume=replaced,
    )
    storage.write_json(stats.to_json(), layout.stats("tokenize", index))
    return stats
