"""The report's figures: rejections, document lengths, examples per entity, distances.

Figures are built with `matplotlib.figure.Figure` and rendered by Agg, without pyplot, so
nothing here touches the global matplotlib state of a notebook or a worker. The notebook
draws the same figures with the same functions (`report_figures`, or the `plot_*`
functions on data it gathered itself).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_prep.report.data import DistanceHistogram, LengthHistogram, PlotData, plot_data

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LENGTH_TITLE = "Document length, kept vs rejected"
KEPT_COLOR, REJECTED_COLOR, MALFORMED_COLOR = "#2a9d5c", "#c8553d", "#8d8d8d"
BEFORE_COLOR, AFTER_COLOR = "#8d8d8d", "#2a6f9d"


def warm_up_plotting() -> None:
    """Import matplotlib and load its fonts now (it takes a while), e.g. while a cluster starts."""
    figure_png(_figure(1, 1))


def _figure(width: float, height: float, margins: tuple[float, float, float, float] | None = None) -> Figure:
    """A figure; `margins` (left, right, bottom, top, in inches) fixes where its axes go.

    Without margins the layout engine fits them to the labels, which costs two extra
    passes over every tick of the figure (slow for a log-log plot); the plots
    whose labels are of known size get fixed margins instead.
    """
    # Imported here: graph.py imports this module (through report_html), and workers need no matplotlib.
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
        (after, AFTER_COLOR, 1.5, "written (after the cap and the drops)"),
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
                label=f"{label}: {len(ranked):,} distinct targets, {int(ranked.sum()):,} examples",
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


def plot_near_clusters(near: dict | None) -> Figure:
    """Near-duplicate clusters by size (documents per cluster, the kept copy included)."""
    fig = _figure(7, 3.2, AXES_MARGINS)
    ax = fig.add_subplot()
    if not near or not near.get("clusters"):
        _empty(ax, "near-dedup off" if near is None else "no near-duplicate clusters")
        return fig
    sizes = near["cluster_sizes"]
    ax.bar(list(sizes), list(sizes.values()), color=AFTER_COLOR, alpha=0.7)
    ax.set_xlabel("documents in the cluster")
    ax.set_ylabel("clusters")
    ax.set_title(f"Near-duplicate clusters ({near['clusters']:,}; {near['documents_removed']:,} documents removed)")
    return fig


def figures(data: PlotData) -> dict[str, Figure]:
    """The report's figures, by title (near-duplicate clusters when near-dedup ran)."""
    found = {
        "Rejections per reason": plot_rejections(data.rejected, data.malformed, data.kept),
        LENGTH_TITLE: plot_lengths(data.lengths, data.length_rule),
        "Examples per entity, before and after the cap": plot_entity_counts(data.before_cap, data.after_cap, data.cap),
        "Antecedent–mention distance": plot_distances(data.distances),
    }
    if data.near is not None:
        found["Near-duplicate clusters"] = plot_near_clusters(data.near)
    return found


def report_figures(report: dict[str, Any], output_dir: str) -> dict[str, Figure]:
    """The report's figures for a finished run (e.g. to show in a notebook)."""
    return figures(plot_data(report, output_dir))


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
