"""The benchmark's report: the table, the paired ratios, the targets (read from targets.toml)
and the diagnostics. Plain functions on `Row`s; nothing here runs a workload."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import tomllib
from common import BENCH_DIR
from measure import Row

TARGETS_FILE = BENCH_DIR / "targets.toml"


def load_targets(path: Path = TARGETS_FILE) -> dict[str, dict[str, Any]]:
    """{key: {label, bound, at_least}} in the file's order."""
    with open(path, "rb") as handle:
        targets = tomllib.load(handle)
    for key, target in targets.items():
        missing = {"label", "bound", "at_least"} - set(target)
        if missing:
            raise ValueError(f"{path}: target [{key}] lacks {sorted(missing)}")
    return targets


def evaluate(targets: dict[str, dict[str, Any]], measured: dict[str, float | None], scale: int) -> list[dict]:
    """PASS, FAIL or SKIP (not measured) for every target, in the targets' order."""
    unknown = set(measured) - set(targets)
    if unknown:
        raise ValueError(f"measured values for targets not in {TARGETS_FILE.name}: {sorted(unknown)}")
    out = []
    for key, target in targets.items():
        value, bound, at_least = measured.get(key), target["bound"], target["at_least"]
        if value is None:
            result = "SKIP"
        else:
            result = "PASS" if (value >= bound if at_least else value <= bound) else "FAIL"
        label = target["label"].format(scale=scale)
        sign = ">=" if at_least else "<="
        out.append({"target": key, "label": label, "value": value, "bound": bound, "sign": sign, "result": result})
    return out


def median_of(ratios: dict[str, list[float]], key: str) -> float | None:
    values = ratios.get(key) or []
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row], limit: float | None, baseline: Row | None) -> str:
    head = (
        f"{'run':<44}{'wall s':>8}{'docs/s':>8}{'Kiwi chars/s':>13}{'stage s':>9}"
        f"{'stage chars/s':>14}{'to Kiwi':>10}{'peak RSS MiB':>13}{'CPU s':>8}{'examples':>9}{'B/example':>10}"
        f"{'x limit':>8}{'x Pool':>8}{'load':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        vs_limit = r.stage_chars_per_s / limit if (limit and r.stage_chars_per_s) else None
        vs_pool = r.docs_per_s / baseline.docs_per_s if (baseline and r.kind in ("baseline", "pipeline")) else None
        lines.append(
            f"{r.name[:43]:<44}{r.wall:>8.1f}{r.docs_per_s:>8.1f}{r.chars_per_s:>13,.0f}"
            f"{_fmt(r.stage_seconds, '.1f'):>9}{_fmt(r.stage_chars_per_s, ',.0f'):>14}"
            f"{_fmt(r.kiwi_chars, ','):>10}{r.peak_rss / 2**20:>13,.0f}{r.cpu_seconds:>8.1f}{_fmt(r.examples, ','):>9}"
            f"{_fmt(r.bytes_per_example, ',.0f'):>10}{_fmt(vs_limit, '.2f'):>8}{_fmt(vs_pool, '.2f'):>8}"
            f"{(r.load_before + r.load_after) / 2:>6.1f}"
        )
    return "\n".join(lines)


def paired_ratios(rows: dict[str, Row], paired: dict[str, list[tuple[str, Any]]]) -> dict[str, list[float]]:
    """Per repeat: filter stage / that repeat's Kiwi limit, pipeline / baseline, 2 / 1 workers,
    and Kiwi alone in 2 / 1 processes."""
    ratios: dict[str, list[float]] = {key: [] for key in paired}
    for pipe, limits in paired.get("filter", []):
        best = max((rows[n].chars_per_s for n in limits if n in rows), default=None)
        if pipe in rows and best and rows[pipe].stage_chars_per_s:
            ratios["filter"].append(rows[pipe].stage_chars_per_s / best)
    for key in ("end_to_end", "scaling", "kiwi_scaling"):
        for a, b in paired.get(key, []):
            if a in rows and b in rows:
                ratios[key].append(rows[a].docs_per_s / rows[b].docs_per_s)
    return ratios


def median_row(runs: list[Row]) -> Row:
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def counterbalanced(runs: list, k: int) -> list:
    """The runs in order for the k-th repetition: as given, then reversed, then as given, ..."""
    return runs if k % 2 == 0 else runs[::-1]


def repeats_text(ratios: dict[str, list[float]]) -> str:
    labels = {
        "filter": "filter stage / limit",
        "end_to_end": "pipeline / baseline",
        "scaling": "2 / 1 workers",
        "kiwi_scaling": "Kiwi alone, 2 / 1 processes",
    }
    return "\n".join(
        f"  {labels[key]} per repeat, in run order: {', '.join(f'{v:.3f}' for v in values)}"
        for key, values in ratios.items()
        if len(values) > 1
    )


def kiwi_scaling_text(ratios: dict[str, list[float]]) -> str:
    """Kiwi's own 2 / 1 process scaling on this host, beside the scaling target (no target)."""
    values = ratios.get("kiwi_scaling") or []
    if not values:
        return ""
    return _status_line(
        "info",
        "Kiwi alone, 2 / 1 processes (the ceiling)",
        statistics.median(values),
        "this host's cores, for the scaling target",
    )


def targets_text(results: list[dict]) -> str:
    return "\n".join(
        _status_line(t["result"], t["label"], t["value"], f"target {t['sign']} {t['bound']}") for t in results
    )


def _status_line(status: str, label: str, value: float | None, note: str) -> str:
    """One line under the table: PASS/FAIL/SKIP of a target, or info."""
    shown = "-" if value is None else f"{value:.3f}"
    return f"  {status:<5} {label:<44} {shown:>7}  ({note})"


def diagnostics(rows: list[Row], scale_note: dict[str, Row]) -> str:
    lines = []
    for r in rows:
        d = r.details
        if r.kind == "pipeline":
            workers = d.get("workers") or 1
            ws = d["worker_seconds"]
            busy = ws.get("filter", 0.0) / (workers * r.stage_seconds) if r.stage_seconds else 0
            lines.append(
                f"  {r.name}: partitions {d['partitions']}, stages {d['seconds']}, "
                f"start-up+shutdown {d['startup_and_shutdown']} s; worker seconds {ws}; "
                f"Kiwi busy {busy:.0%} of {workers} task slot(s) x analyse stage; per worker {d.get('per_worker')}; "
                f"rejected {d.get('rejected')}; analysis {d.get('analysis')}"
            )
        elif r.kind == "baseline":
            types = {
                k: v.replace("List(Value(", "[").replace("Value(", "").replace("))", "]").strip(")'")
                for k, v in (d.get("features") or {}).items()
                if k in ("input_ids", "attention_mask", "labels")
            }
            lines.append(f"  {r.name}: stages {d['seconds']}; kept {d.get('kept')}; column types {types}")
        elif r.kind in ("limit", "kiwi_alone"):
            extra = d.get("per_process_seconds") or d.get("kiwi_build_seconds")
            lines.append(f"  {r.name}: {d['docs']} docs, {d['chars']:,} chars; {extra}")
    for r in rows:
        procs = r.details.get("processes") or []
        if procs:
            shown = ", ".join(f"d{p['depth']}:{p['cpu']:.1f}s/{p['peak_rss_mib']}M" for p in procs if p["cpu"] >= 0.5)
            lines.append(f"  CPU s / peak RSS per process (depth in tree), {r.name}: {shown}")
    for label, (small, big) in scale_note.items():
        lines.append(
            f"  memory growth {label}: {small.peak_rss / 2**20:,.0f} -> {big.peak_rss / 2**20:,.0f} MiB "
            f"({big.peak_rss / small.peak_rss:.2f}x)"
        )
    return "\n".join(lines)
