"""report.html: the run's plots, counts, config and throughput in one self-contained file.

The plots are PNG images embedded as base64 data URIs, so the file can be mailed or
opened anywhere. Also the examples as HTML, for the notebook (`examples_html`).
"""

from __future__ import annotations

import base64
import html
import logging
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

import yaml

from dask_prep.io import storage
from dask_prep.report.data import plot_data
from dask_prep.report.plots import LENGTH_TITLE, figure_png, figures

log = logging.getLogger(__name__)


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
        rows.append(("kept, without a written example", d["kept_without_examples"], 2))
    if "duplicate_texts" in report:
        rows.append(("texts with duplicates", report["duplicate_texts"], 0))
    if report.get("near_duplicates"):
        rows.append(("near-duplicate clusters", report["near_duplicates"]["clusters"], 0))
    rows += [(f"entities: {name.replace('_', ' ')}", n, 0) for name, n in ent.items()]
    if "echo" in e:
        rows.append(("title echoes (not candidates)", e["echo"], 0))
    rows.append(("examples before the cap", e["before_cap"], 0))
    rows += [
        (label, e[key], 1)
        for key, label in (("not_proper_noun", "not proper nouns"), ("over_cap", "over the cap"))
        if key in e
    ]
    rows.append(("examples after the cap", e["after_cap"], 0))
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
    elif report.get("derived_from"):
        what = f"derived from the analysis in {report['derived_from']['analysis_dir']} (dask-prep derive), no Kiwi"
    else:
        what = (
            f"{analysis['stopped_early']:,} of {analysis['documents']:,} documents were decided on an analysed "
            "prefix (a rule that can decide early, e.g. a pronoun); their other analysis values are not "
            "measured (null). The others were analysed whole"
        )
    return (
        f'<p class="note">Analysis: <b>{html.escape(analysis["mode"])}</b>: {html.escape(what)}. These documents '
        f"hold {analysis['chars']:,} characters; Kiwi analysed {analysis['kiwi_chars']:,} characters, "
        "counting each chunk and each whole-document analysis.</p>"
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
    storage.write_text(path, render_html(report, images))
    return path
