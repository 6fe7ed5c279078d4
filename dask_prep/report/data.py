"""The aggregates the report's plots are drawn from, read from a finished run's output directory.

Small aggregates (histograms, per-entity counts) read with pyarrow one column and one
record batch at a time, never the texts, so a report of a very large run needs little
memory.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dask_prep.io import storage
from dask_prep.io.reading import MALFORMED_REASONS
from dask_prep.output.layout import WORK_DIR

LENGTH_BINS_PER_DECADE = 10
LENGTH_DECADES = 8  # lengths from 1 to 10^8 characters; longer ones go to the last bin
DISTANCE_BINS = 50
BATCH_ROWS = 65_536


@dataclass
class LengthHistogram:
    """Document lengths (characters) of kept and rejected documents, on log-spaced bins."""

    kept: np.ndarray = field(default_factory=lambda: np.zeros(LENGTH_BINS_PER_DECADE * LENGTH_DECADES, np.int64))
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(LENGTH_BINS_PER_DECADE * LENGTH_DECADES, np.int64))

    @property
    def edges(self) -> np.ndarray:
        return np.logspace(0, LENGTH_DECADES, LENGTH_BINS_PER_DECADE * LENGTH_DECADES + 1)

    def add(self, chars: Iterable[int], kept: Iterable[bool]) -> None:
        """Count documents; `kept` says for each whether it was kept (else rejected)."""
        chars_arr = np.asarray(chars, dtype=np.float64)
        kept_arr = np.asarray(kept, dtype=bool)
        bins = np.floor(np.log10(np.maximum(chars_arr, 1.0)) * LENGTH_BINS_PER_DECADE).astype(np.int64)
        bins = np.clip(bins, 0, len(self.kept) - 1)
        self.kept += np.bincount(bins[kept_arr], minlength=len(self.kept))
        self.rejected += np.bincount(bins[~kept_arr], minlength=len(self.rejected))


@dataclass
class DistanceHistogram:
    """Characters between the antecedent's start and the masked mention's start."""

    width: int
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def edges(self) -> np.ndarray:
        return np.arange(len(self.counts) + 1) * self.width

    def add(self, distances: Iterable[int]) -> None:
        values = np.asarray(distances, dtype=np.int64)
        if values.size == 0:
            return
        # Distances are at most entities.max_distance; any beyond the last bin count in it.
        counts = np.bincount(np.minimum(np.maximum(values, 0) // self.width, DISTANCE_BINS - 1))
        if len(counts) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(counts) - len(self.counts)))
        self.counts[: len(counts)] += counts


# Offsets are int32 columns: no distance is longer, whatever `entities.max_distance` says.
LONGEST_DISTANCE = 2**31 - 1


def distance_bin_width(max_distance: Any) -> int:
    """Bin width of the distance histogram: `DISTANCE_BINS` bins up to the config's bound, which
    is clamped to what a distance can be (an extreme or odd value never fails the plot)."""
    if not _is_number(max_distance) or not 0 < max_distance:
        max_distance = 2000
    return max(1, math.ceil(min(max_distance, LONGEST_DISTANCE) / DISTANCE_BINS))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class PlotData:
    """Everything the four plots need, already aggregated."""

    rejected: dict[str, int]
    malformed: dict[str, int]
    kept: int
    lengths: LengthHistogram | None  # None when the decisions were not written
    length_rule: tuple[float | None, float | None] | None
    before_cap: np.ndarray  # examples per distinct entity, before the cap
    after_cap: np.ndarray  # examples per distinct entity, as written
    cap: int | None
    distances: DistanceHistogram
    near: dict | None = None  # near-duplicate clusters (report's `near_duplicates`), None when off


def _parts(folder: str) -> list[str]:
    if storage.is_remote(folder):  # the parts on the store, read where they are
        return storage.glob(os.path.join(folder, "part-*.parquet"))
    return sorted(glob.glob(os.path.join(folder, "part-*.parquet")))


def _batches(paths: list[str], columns: list[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        with storage.open_read(path) as handle:
            yield from pq.ParquetFile(handle).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def length_histogram(decisions_dir: str) -> LengthHistogram | None:
    """Lengths of kept vs rejected documents from DIR/decisions/ (malformed ones left out)."""
    paths = _parts(decisions_dir)
    if not paths:
        return None
    hist = LengthHistogram()
    malformed = pa.array(MALFORMED_REASONS)
    for batch in _batches(paths, ["rejected_by", "chars"]):
        reason, chars = batch.column("rejected_by"), batch.column("chars")
        wanted = pc.and_(pc.is_valid(chars), pc.invert(pc.fill_null(pc.is_in(reason, malformed), False)))
        chars = pc.filter(chars, wanted)
        kept = pc.filter(pc.is_null(reason), wanted)
        hist.add(chars.to_numpy(zero_copy_only=False), kept.to_numpy(zero_copy_only=False))
    return hist


class _CountMerger:
    """Per-value counts over many batches, held as one Arrow table (compact for strings).

    Batches' counts are merged once the pending rows outnumber the merged ones, so each
    row is re-aggregated O(log n) times.
    """

    def __init__(self) -> None:
        self.merged: pa.Table | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, values: pa.Array) -> None:
        if len(values) == 0:
            return
        counted = pc.value_counts(values)
        self.pending.append(pa.table({"value": counted.field("values"), "n": counted.field("counts")}))
        self.pending_rows += len(counted)
        if self.pending_rows >= max(BATCH_ROWS, len(self.merged) if self.merged is not None else 0):
            self._merge()

    def _merge(self) -> None:
        tables = ([self.merged] if self.merged is not None else []) + self.pending
        if tables:
            grouped = pa.concat_tables(tables).group_by("value").aggregate([("n", "sum")])
            self.merged = grouped.select(["value", "n_sum"]).rename_columns(["value", "n"])
        self.pending, self.pending_rows = [], 0

    def counts(self) -> np.ndarray:
        self._merge()
        if self.merged is None:
            return np.zeros(0, np.int64)
        return self.merged.column("n").to_numpy().astype(np.int64)


def candidate_target_counts(candidates_dir: str) -> np.ndarray:
    """Examples per distinct entity before the cap, from the stage-1 parts (targets only)."""
    merger = _CountMerger()
    for batch in _batches(_parts(candidates_dir), ["candidates.list.element.target"]):
        merger.add(pc.list_flatten(batch.column(0)).field("target"))
    return merger.counts()


def _example_batches(output_dir: str, report: dict[str, Any], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches of the written examples: the output parts, else the saved dataset."""
    parts = _parts(os.path.join(output_dir, WORK_DIR, "examples"))
    if parts:
        yield from _batches(parts, columns)
        return
    dataset = report.get("dataset")
    if dataset and storage.isdir(dataset):
        import datasets

        # Memory-mapped Arrow files; the sort index does not matter for counting.
        loaded = datasets.load_from_disk(dataset, storage_options=storage.options_for(dataset) or None)
        splits = loaded.values() if isinstance(loaded, datasets.DatasetDict) else [loaded]
        for split in splits:
            table = split.data.table
            if table.num_rows:
                yield from table.select(columns).to_batches(max_chunksize=BATCH_ROWS)


def _positive_or_none(value: Any) -> Any:
    return value if _is_number(value) and value > 0 else None


def _drawable_bounds(rule: Any) -> tuple[Any, Any] | None:
    """The length rule's (min, max) for the plot's marks; a bound off the plot's axis is not marked."""
    if not isinstance(rule, dict) or not rule.get("enabled"):
        return None
    return tuple(  # type: ignore[return-value]
        bound if _is_number(bound) and 1 <= bound <= 10**LENGTH_DECADES else None
        for bound in (rule.get("min"), rule.get("max"))
    )


def plot_data(report: dict[str, Any], output_dir: str) -> PlotData:
    """Aggregate what the plots need from a finished run's output directory."""
    config = report.get("config") or {}
    entities = config.get("entities") or {}
    decisions = os.path.join(output_dir, "decisions")
    lengths = length_histogram(decisions) if storage.isdir(decisions) else None
    length_rule = (config.get("rules") or {}).get("length")
    distances = DistanceHistogram(width=distance_bin_width(entities.get("max_distance")))
    after = _CountMerger()
    for batch in _example_batches(output_dir, report, ["target", "distance"]):
        after.add(batch.column("target"))
        distances.add(batch.column("distance").to_numpy(zero_copy_only=False))
    return PlotData(
        rejected=dict(report.get("rejected", {})),
        malformed=dict(report.get("malformed", {})),
        kept=report["documents"]["kept"],
        lengths=lengths,
        length_rule=_drawable_bounds(length_rule),
        before_cap=candidate_target_counts(os.path.join(output_dir, WORK_DIR, "candidates")),
        after_cap=after.counts(),
        cap=_positive_or_none(entities.get("max_entity_freq")),
        distances=distances,
        near=report.get("near_duplicates"),
    )
