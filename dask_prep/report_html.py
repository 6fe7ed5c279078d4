"""report.html: the run's plots, counts, config and throughput in one self-contained file.

The plots are PNG images embedded as base64 data URIs, so the file can be mailed or
opened anywhere. Their data are small aggregates (histograms, per-entity counts) read
with pyarrow one column and one record batch at a time, never the texts, so a report of
a very large run needs little memory. The notebook draws the same figures with the same
functions (`report_figures`, or the `plot_*` functions on data it gathered itself).

Figures are built with `matplotlib.figure.Figure` and rendered by Agg, without pyplot, so
nothing here touches the global matplotlib state of a notebook or a worker.
"""

from __future__ import annotations

import base64
import glob
import html
import io
import logging
import math
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from dask_prep import storage
from dask_prep.output import WORK_DIR
from dask_prep.reading import MALFORMED_REASONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

LENGTH_BINS_PER_DECADE = 10
LENGTH_DECADES = 8  # lengths from 1 to 10^8 characters; longer ones go to the last bin
DISTANCE_BINS = 50
LENGTH_TITLE = "Document length, kept vs rejected"
BATCH_ROWS = 65_536
KEPT_COLOR, REJECTED_COLOR, MALFORMED_COLOR = "#2a9d5c", "#c8553d", "#8d8d8d"
BEFORE_COLOR, AFTER_COLOR = "#8d8d8d", "#2a6f9d"


# ---- aggregates -----------------------------------------------------------------------


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
        counts = np.bincount(np.maximum(values, 0) // self.width)
        if len(counts) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(counts) - len(self.counts)))
        self.counts[: len(counts)] += counts


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


def plot_data(report: dict[str, Any], output_dir: str) -> PlotData:
    """Aggregate what the plots need from a finished run's output directory."""
    config = report.get("config") or {}
    entities = config.get("entities") or {}
    decisions = os.path.join(output_dir, "decisions")
    lengths = length_histogram(decisions) if storage.isdir(decisions) else None
    length_rule = (config.get("rules") or {}).get("length")
    max_distance = entities.get("max_distance") or 2000
    distances = DistanceHistogram(width=max(1, math.ceil(max_distance / DISTANCE_BINS)))
    after = _CountMerger()
    for batch in _example_batches(output_dir, report, ["target", "distance"]):
        after.add(batch.column("target"))
        distances.add(batch.column("distance").to_numpy(zero_copy_only=False))
    return PlotData(
        rejected=dict(report.get("rejected", {})),
        malformed=dict(report.get("malformed", {})),
        kept=report["documents"]["kept"],
        lengths=lengths,
        length_rule=(length_rule["min"], length_rule["max"]) if length_rule and length_rule.get("enabled") else None,
        before_cap=candidate_target_counts(os.path.join(output_dir, WORK_DIR, "candidates")),
        after_cap=after.counts(),
        cap=entities.get("max_entity_freq"),
        distances=distances,
    )


# ---- figures --------------------------------------------------------------------------


def warm_up_plotting() -> None:
    """Import matplotlib and load its fonts now (it takes a while), e.g. while a cluster starts."""
    figure_png(_figure(1, 1))


def _figure(width: float, height: float, margins: tuple[float, float, float, float] | None = None) -> Figure:
    """A figure; `margins` (left, right, bottom, top, in inches) fixes where its axes go.

    Without margins the layout engine fits them to the labels, which costs two extra
    passes over every tick of the figure (slow for a log-log plot); the plots
    whose labels are of known size get fixed margins instead.
    """
    # Imported here: graph.py imports this module, and workers need no matplotlib.
    from matplotlib.figure import Figure

    if margins is None:
        return Figure(figsize=(width, height), layout="constrained")
    fig = Figure(figsize=(width, height))
    left, right, bottom, top = margins
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return fig


# Room for 6-digit tick labels and an axis label on the left, a title on top.
AXES_MARGINS = (0.85, 0.2, 0.55, 0.35)


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_rejections(
    rejected: dict[str, int], malformed: dict[str, int] | None = None, kept: int | None = None
) -> Figure:
    """Documents per rejection reason (and malformed reason), with the kept count for scale."""
    rows = [(reason, n, REJECTED_COLOR) for reason, n in sorted(rejected.items(), key=lambda kv: kv[1])]
    rows = [(f"malformed: {r}", n, MALFORMED_COLOR) for r, n in sorted((malformed or {}).items())] + rows
    if kept is not None:
        rows.append(("kept", kept, KEPT_COLOR))
    fig = _figure(7, 0.9 + 0.38 * max(len(rows), 2))
    ax = fig.add_subplot()
    if not rows:
        _empty(ax, "no documents")
        return fig
    labels, counts, colors = zip(*rows, strict=True)
    bars = ax.barh(range(len(rows)), counts, color=colors)
    ax.bar_label(bars, labels=[f"{n:,}" for n in counts], padding=3, fontsize=8)
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlabel("documents")
    ax.set_xlim(0, max(max(counts), 1) * 1.15)
    ax.set_title("Documents per rejection reason")
    return fig


def plot_lengths(
    lengths: LengthHistogram | None, length_rule: tuple[float | None, float | None] | None = None
) -> Figure:
    """Document length (characters), kept vs rejected, on a log axis."""
    fig = _figure(7, 3.6, AXES_MARGINS)
    ax = fig.add_subplot()
    if lengths is None:
        _empty(ax, "no per-document decisions in this run (--no-decisions)")
        return fig
    used = np.nonzero(lengths.kept + lengths.rejected)[0]
    if used.size == 0:
        _empty(ax, "no documents with text")
        return fig
    lo, hi = used[0], used[-1] + 1
    edges = lengths.edges[lo : hi + 1]
    for counts, color, label in (
        (lengths.rejected, REJECTED_COLOR, "rejected"),
        (lengths.kept, KEPT_COLOR, "kept"),
    ):
        ax.stairs(counts[lo:hi], edges, color=color, label=f"{label} ({int(counts.sum()):,})", fill=True, alpha=0.4)
        ax.stairs(counts[lo:hi], edges, color=color, linewidth=1.2)
    for bound, name in zip(length_rule or (), ("min", "max"), strict=False):
        if bound is not None:
            ax.axvline(bound, color="#333333", linestyle="--", linewidth=1)
            ax.annotate(
                f"length {name}\n{bound:,.0f}",
                (bound, 0),
                xycoords=("data", "axes fraction"),
                xytext=(3, 4),
                textcoords="offset points",
                fontsize=7,
            )
    ax.set_xscale("log")
    # Kept documents are often a small fraction: a log count axis shows both.
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)  # a bin of one document stays visible
    ax.set_xlabel("document length (characters, log scale)")
    ax.set_ylabel("documents (log scale)")
    ax.set_title("Document length, kept vs rejected")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_entity_counts(before: np.ndarray, after: np.ndarray, cap: int | None = None) -> Figure:
    """Examples per entity, entities ranked by count, before and after the cap (log–log)."""
    fig = _figure(7, 4, AXES_MARGINS)
    ax = fig.add_subplot()
    if len(before) == 0 and len(after) == 0:
        _empty(ax, "no examples")
        return fig
    # The "before" line is drawn wide underneath, so it stays visible where both agree.
    for counts, color, width, label in (
        (before, BEFORE_COLOR, 4.0, "before the cap"),
        (after, AFTER_COLOR, 1.5, "after the cap (written)"),
    ):
        if len(counts):
            ranked = np.sort(counts)[::-1]
            ax.step(
                np.arange(1, len(ranked) + 1),
                ranked,
                where="post",
                color=color,
                linewidth=width,
                alpha=0.8,
                label=f"{label}: {len(ranked):,} entities, {int(ranked.sum()):,} examples",
            )
    if cap is not None:
        ax.axhline(cap, color="#333333", linestyle=":", linewidth=1, label=f"cap = {cap:,} per entity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("entity rank (by examples)")
    ax.set_ylabel("examples of the entity")
    ax.set_title("Examples per entity, before and after the cap")
    ax.legend(fontsize=8)
    return fig


def plot_distances(distances: DistanceHistogram) -> Figure:
    """Histogram of the antecedent–mention distance (characters) of the written examples."""
    fig = _figure(7, 3.6, AXES_MARGINS)
    ax = fig.add_subplot()
    if distances.counts.sum() == 0:
        _empty(ax, "no examples")
        return fig
    ax.stairs(distances.counts, distances.edges, fill=True, color=AFTER_COLOR, alpha=0.7)
    total = int(distances.counts.sum())
    ax.set_xlabel("distance from antecedent to masked mention (characters)")
    ax.set_ylabel("examples")
    ax.set_title(f"Antecedent–mention distance ({total:,} examples, bins of {distances.width} chars)")
    return fig


def figures(data: PlotData) -> dict[str, Figure]:
    """The four figures of the report, by title."""
    return {
        "Rejections per reason": plot_rejections(data.rejected, data.malformed, data.kept),
        LENGTH_TITLE: plot_lengths(data.lengths, data.length_rule),
        "Examples per entity, before and after the cap": plot_entity_counts(data.before_cap, data.after_cap, data.cap),
        "Antecedent–mention distance": plot_distances(data.distances),
    }


def report_figures(report: dict[str, Any], output_dir: str) -> dict[str, Figure]:
    """The report's figures for a finished run (e.g. to show in a notebook)."""
    return figures(plot_data(report, output_dir))


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# ---- examples as text -----------------------------------------------------------------

_EXAMPLE_CSS = (
    ".ante { background: #cfe3f7; border-radius: 3px; padding: 0 2px; }"
    " .mask { background: #f7d4cf; border-radius: 3px; padding: 0 2px; }"
    " .target { color: #c8553d; font-size: 0.8em; vertical-align: sub; }"
    " .elided { color: #999; }"
)


def _decode_pieces(tokenizer: Any, segments: list[list[int]]) -> list[str]:
    """Decode consecutive token segments so that the pieces join into the decoded whole.

    Decoding each segment alone loses the spacing between them (WordPiece `##` joins,
    SentencePiece word starts), so each piece is the growth of the decoded prefix.
    """
    pieces, done, ids = [], "", []
    for segment in segments:
        ids = ids + segment
        text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        if not text.startswith(done):  # decoding is not prefix-stable here: fall back
            return [tokenizer.decode(seg, clean_up_tokenization_spaces=False) + " " for seg in segments]
        pieces.append(text[len(done) :])
        done = text
    return pieces


def example_html(example: dict[str, Any], tokenizer: Any, context: int = 40) -> str:
    """One output example as text: the antecedent and the masked mention highlighted.

    Shows `context` tokens around both mentions and elides a long stretch between them.
    The target the model must predict is printed after the masks.
    """
    ids = list(example["input_ids"])
    if "attention_mask" in example:  # padding is not text
        ids = ids[: int(sum(example["attention_mask"]))]
    special = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}
    spans = sorted(
        [
            (example["antecedent_start"], example["antecedent_end"], "ante"),
            (example["mask_start"], example["mask_end"], "mask"),
        ]
    )
    lo = max(0, spans[0][0] - context)
    hi = min(len(ids), spans[1][1] + context)
    while lo > 0 and tokenizer.convert_ids_to_tokens(ids[lo]).startswith("##"):
        lo -= 1  # start the excerpt at a word start (WordPiece continuation pieces)
    marks: list[tuple[int, int, str | None]] = []
    position = lo
    for start, end, kind in spans:
        if start - position > 2 * context and position != lo:
            marks += [(position, position + context, None), (-1, -1, "elided"), (start - context, start, None)]
        else:
            marks.append((position, start, None))
        marks.append((start, end, kind))
        position = end
    marks.append((position, hi, None))
    segments = [[i for i in ids[a:b] if i not in special] if a >= 0 else [] for a, b, _ in marks]
    pieces = _decode_pieces(tokenizer, segments)
    out = ["… " if lo > 0 else ""]
    for (_, _, kind), piece in zip(marks, pieces, strict=True):
        if kind is None:
            out.append(html.escape(piece))
        elif kind == "elided":
            out.append('<span class="elided"> […] </span>')
        else:
            word = piece.lstrip()  # the space before a word stays outside the highlight
            title = "antecedent" if kind == "ante" else "masked mention"
            space = piece[: len(piece) - len(word)]
            out.append(f'{space}<span class="{kind}" title="{title}">{html.escape(word)}</span>')
            if kind == "mask":
                out.append(f'<span class="target">→ {html.escape(str(example.get("target", "")))}</span>')
    out.append(" …" if hi < len(ids) else "")
    return "".join(out)


def examples_html(examples: Iterable[dict[str, Any]], tokenizer: Any, context: int = 40) -> str:
    """Several examples as an HTML fragment (for a notebook's `display(HTML(...))`)."""
    items = [
        f"<li><code>{html.escape(str(e.get('doc_id', '')))}</code>: {example_html(e, tokenizer, context)}</li>"
        for e in examples
    ]
    legend = '<span class="ante">antecedent</span> <span class="mask">masked mention</span>'
    return f"<style>{_EXAMPLE_CSS}</style><p>{legend}</p><ol>{''.join(items)}</ol>"


# ---- the HTML file --------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.indent1 { padding-left: 2em; } .indent2 { padding-left: 3.5em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; } img { max-width: 100%; }
.note { color: #666; font-style: italic; }
"""


def _table(rows: list[tuple[str, Any, int]]) -> str:
    """Rows of (label, value, indent level)."""
    out = ["<table>"]
    for label, value, indent in rows:
        shown = f"{value:,}" if isinstance(value, int) else (f"{value:,.1f}" if isinstance(value, float) else value)
        out.append(
            f'<tr><td class="indent{indent}">{html.escape(str(label))}</td>'
            f'<td class="n">{html.escape(str(shown))}</td></tr>'
        )
    out.append("</table>")
    return "\n".join(out)


def _count_rows(report: dict[str, Any]) -> list[tuple[str, Any, int]]:
    d, e, ent = report["documents"], report["examples"], report.get("entities", {})
    rows: list[tuple[str, Any, int]] = [("documents read", d["read"], 0), ("malformed", d["malformed"], 1)]
    rows += [(reason, n, 2) for reason, n in report.get("malformed", {}).items()]
    rows.append(("rejected", d["rejected"], 1))
    rows += [(reason, n, 2) for reason, n in report.get("rejected", {}).items()]
    rows.append(("kept", d["kept"], 1))
    if "kept_without_examples" in d:
        rows.append(("kept, without an example", d["kept_without_examples"], 2))
    if "duplicate_texts" in report:
        rows.append(("texts with duplicates", report["duplicate_texts"], 0))
    rows += [(f"entities: {name.replace('_', ' ')}", n, 0) for name, n in ent.items()]
    rows += [("examples before the cap", e["before_cap"], 0), ("examples after the cap", e["after_cap"], 0)]
    rows += [(f"dropped: {reason}", n, 1) for reason, n in e.get("dropped", {}).items()]
    rows.append(("examples written", e["written"], 0))
    for split, sizes in report.get("splits", {}).items():
        rows.append((f"{split} ({sizes['documents']:,} documents)", sizes["examples"], 1))
    return rows


def _coverage_html(report: dict[str, Any]) -> list[str]:
    """The tokenizer's unknown token in the examples, and the characters that became it."""
    coverage = report.get("tokenizer_coverage")
    if not coverage:
        return []
    rows: list[tuple[str, Any, int]] = [
        ("tokens in examples (masks excluded)", coverage["tokens"], 0),
        ("unknown tokens", coverage["unknown_tokens"], 0),
        ("unknown share", f"{coverage['unknown_share']:.2%}", 0),
    ]
    rows += [(f"{c['char']} ({c['codepoint']})", c["count"], 1) for c in coverage["unknown_chars"]]
    parts = ["<h2>Tokenizer coverage</h2>"]
    parts += [f'<p class="note">Warning: {html.escape(w)}</p>' for w in report.get("warnings", [])]
    parts.append(_table(rows))
    return parts


def _throughput_rows(report: dict[str, Any]) -> list[tuple[str, Any, int]]:
    rows: list[tuple[str, Any, int]] = [(k.replace("_", " "), v, 0) for k, v in report.get("throughput", {}).items()]
    rows += [(f"{stage} (wall seconds)", float(v), 0) for stage, v in report.get("seconds", {}).items()]
    rows += [(f"{stage} (worker seconds)", float(v), 0) for stage, v in report.get("worker_seconds", {}).items()]
    return rows


def _worker_rows(report: dict[str, Any]) -> list[tuple[str, Any, int]]:
    analysed: Counter = Counter()
    tokenized: Counter = Counter()
    for entry in report.get("partition_log", []):
        if not entry.get("analysis_reused"):
            analysed[entry.get("analysed_by") or "(local)"] += 1
        if not entry.get("tokenization_reused"):
            tokenized[entry.get("tokenized_by") or "(local)"] += 1
    return [
        (worker, f"{analysed[worker]:,} analysed, {tokenized[worker]:,} tokenized", 0)
        for worker in sorted(set(analysed) | set(tokenized))
    ]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def _measured_table(report: dict[str, Any]) -> str:
    """Per rule: its bounds, how many documents it measured and where their values lie."""
    head = ("rule", "min bound", "max bound", "measured", "below min", "above max", "min", "mean", "max")
    out = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for name, dist in report.get("measured_values", {}).items():
        cells = [
            dist["threshold_min"],
            dist["threshold_max"],
            dist["measured"],
            dist["below_min"],
            dist["above_max"],
            dist["min"],
            dist["mean"],
            dist["max"],
        ]
        numbers = "".join(f'<td class="n">{_number(c)}</td>' for c in cells)
        out.append(f"<tr><td>{html.escape(name)}</td>{numbers}</tr>")
    out.append("</table>")
    prefix = [
        f"{name}: {dist['measured_on_prefix']:,} measured on a prefix"
        for name, dist in report.get("measured_values", {}).items()
        if dist.get("measured_on_prefix")
    ]
    prefix += [
        f"{name}: {dist['not_measured_stopped_early']:,} not measured"
        for name, dist in report.get("measured_values", {}).items()
        if dist.get("not_measured_stopped_early")
    ]
    if prefix:
        out.append(
            '<p class="note">Documents decided early, on an analysed prefix (progressive analysis): '
            + html.escape("; ".join(prefix))
            + ".</p>"
        )
    return "\n".join(out)


def _analysis_note(report: dict[str, Any]) -> str:
    """Which analysis mode ran, and what it means for the values below."""
    analysis = report.get("analysis")
    if not analysis:
        return ""
    if analysis["mode"] == "full":
        what = "every document that reached the analysis was analysed whole (--full-analysis)"
    else:
        what = (
            f"{analysis['stopped_early']:,} of {analysis['documents']:,} documents were decided on an analysed "
            "prefix (a rule that can decide early, e.g. a pronoun); their other analysis values are not "
            "measured (null). The others were analysed whole"
        )
    return (
        f'<p class="note">Analysis: <b>{html.escape(analysis["mode"])}</b>: {html.escape(what)}. Kiwi analysed '
        f"{analysis['kiwi_chars']:,} of the {analysis['chars']:,} characters of these documents.</p>"
    )


def render_html(report: dict[str, Any], images: dict[str, bytes | str]) -> str:
    """The page; `images` maps a title to PNG bytes, or to a note when there is no plot."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>dask-prep report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>dask-prep report</h1>",
        f"<p>Inputs: {html.escape(', '.join(map(str, report.get('inputs', []))))}<br>",
        f"Dataset: <code>{html.escape(str(report.get('dataset', '')))}</code></p>",
        "<h2>Counts</h2>",
        _analysis_note(report),
        _table(_count_rows(report)),
        *_coverage_html(report),
        "<h2>Plots</h2>",
    ]
    for title, image in images.items():
        if isinstance(image, bytes):
            data = base64.b64encode(image).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></figure>')
        else:
            parts.append(f'<p class="note">{html.escape(title)}: {html.escape(image)}</p>')
    if report.get("measured_values"):
        parts += [
            "<h2>Measured values per rule</h2>",
            '<p class="note">Over the documents that reached each rule (rules run in order and stop at the '
            "first rejection; with progressive analysis the rules that decide early come first); "
            "the histograms are in report.json under measured_values.</p>",
            _measured_table(report),
        ]
    parts += ["<h2>Throughput</h2>", _table(_throughput_rows(report))]
    workers = _worker_rows(report)
    if workers:
        parts += ["<h2>Partitions per worker</h2>", _table(workers)]
    config = yaml.safe_dump(report.get("config", {}), sort_keys=False, allow_unicode=True)
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(config)}</pre>", "</body></html>"]
    return "\n".join(parts)


def write_html_report(report: dict[str, Any], output_dir: str) -> str:
    """Write DIR/report.html next to report.json; returns its path.

    A plot that cannot be drawn becomes a note in the page (and a logged warning) rather
    than failing a run whose dataset is already written.
    """
    images: dict[str, bytes | str] = {}
    try:
        data = plot_data(report, output_dir)
        for title, fig in figures(data).items():
            if title == LENGTH_TITLE and data.lengths is None:
                images[title] = "not plotted: this run wrote no per-document decisions (--no-decisions)"
            else:
                images[title] = figure_png(fig)
    except Exception as exc:  # the report must not cost the user a finished dataset
        log.warning("report.html: the plots could not be drawn: %s", exc, exc_info=True)
        images["Plots"] = f"could not be drawn ({type(exc).__name__}: {exc})"
    path = os.path.join(output_dir, "report.html")
    if storage.is_remote(path):  # one request under the final name (a store has no rename)
        storage.write_text(path, render_html(report, images))
        return path
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(render_html(report, images))
    os.replace(tmp, path)
    return path
