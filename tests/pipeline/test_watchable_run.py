"""Issue 25: a run people can watch. The analyse bar has a total and moves inside partitions
(the workers' progress events), the tokenize bar counts examples written in total, and a log
that is not a terminal gets no bar lines.

The CLI runs as a real subprocess against the session cluster (`--scheduler`), on a real
pseudo-terminal, as in tests/pipeline/test_progress.py.
"""

from __future__ import annotations

import json
import re
import subprocess

from support.terminal import BAR_REDRAW, CLI_TIMEOUT, cli_command, run_in_pty, terminal_env

# e.g. "analyse:  12%|█▏        | 180/1500 [00:05<00:40, 33.2doc/s, kept=12]"
ANALYSE_BAR = re.compile(r"analyse:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[[^<\]]+<[^,\]]+, *[\d.?]+doc/s, kept=(\d+)\]")
TOKENIZE_BAR = re.compile(r"tokenize:.*\|\s*(\d+)/(\d+) \[.*examples=(\d+)\]")
# fineweb2-ko sends nearly every document to Kiwi, and --full-analysis has Kiwi analyse each
# whole (progressive analysis would stop most of them at a pronoun): 3,000 documents are
# tens of seconds of analysis on the test cluster's two workers (the acceptance asks for at
# least 20 s), in partitions of a few hundred documents each.
LONG_SAMPLES = 3000
LONG_RUN = (
    "--preset",
    "fineweb2-ko",
    "--full-analysis",
    "--max-samples",
    str(LONG_SAMPLES),
    "--partition-size",
    "3000",
)


def _long_command(shard, tokenizer, scheduler, output, *extra):
    command = cli_command(shard, tokenizer, scheduler, output, *extra)
    # cli_command's own --max-samples/--partition-size make a short run; these come later and win.
    return [*command, *LONG_RUN]


def _bar_states(output: str, pattern: re.Pattern) -> list[tuple[int, ...]]:
    """Every redraw of one bar, in order, as its numbers."""
    states = []
    for frame in re.split(r"[\r\n]", output):
        match = pattern.search(frame)
        if match:
            states.append(tuple(int(g) for g in match.groups()))
    return states


def test_the_analyse_bar_moves_inside_partitions_with_a_total(client, shard0, tokenizer_dir, tmp_path):
    out = tmp_path / "tty"
    corpus = shard0.parent  # its first LONG_SAMPLES documents
    code, output = run_in_pty(_long_command(corpus, tokenizer_dir, client.scheduler.address, out))
    assert code == 0, output[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    partitions = report["partitions"]["total"]
    print(f"analyse stage {report['seconds']['analyse']:.1f} s, {partitions} partitions")

    states = _bar_states(output, ANALYSE_BAR)
    assert states, output[-3000:]
    assert {total for _, total, _ in states} == {LONG_SAMPLES}, states  # the total, from the scan, from the start
    counts = [done for done, _, _ in states]
    assert counts == sorted(counts), counts  # never goes back
    increases = sum(b > a for a, b in zip(counts, counts[1:], strict=False))
    print(f"analyse bar counts seen: {counts}")
    assert increases >= 4, counts
    # Finished partitions alone give at most one count per partition: more distinct counts
    # than partitions means the bar moved while partitions were being analysed.
    assert len(set(counts) - {0}) > partitions, (partitions, counts)
    assert counts[-1] == report["documents"]["read"] == LONG_SAMPLES
    assert states[-1][2] == report["documents"]["kept"]  # kept so far, in the end all of them

    tokenize = _bar_states(output, TOKENIZE_BAR)
    assert tokenize, output[-3000:]
    written, total_parts = tokenize[-1][2], tokenize[-1][1]
    assert total_parts == partitions
    assert written == report["examples"]["written"]  # in total, not the last partition's
    # Only the stages' own bars (issue 29 added the scan's and the dedup's, issue 30 publication's
    # in rows): `datasets`' own bars are off, on the workers too.
    for frame in re.split(r"[\r\n]", output):
        if "|" in frame and "%" in frame:
            assert frame.lstrip().startswith(("scan:", "dedup:", "analyse:", "tokenize:", "sort:", "publish:")), frame


def test_no_bar_lines_in_a_non_terminal_log(client, shard0, tokenizer_dir, tmp_path):
    """With stderr a pipe (a CI log, `> log 2>&1`), nothing of the bars, though events still flow."""
    command = cli_command(shard0, tokenizer_dir, client.scheduler.address, tmp_path / "pipes")
    result = subprocess.run(command, capture_output=True, text=True, env=terminal_env(), timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    combined = result.stdout + result.stderr
    for mark in ("analyse:", "tokenize:", "doc/s", "part/s", "kept=", "examples=", "it/s", "%|"):
        assert mark not in combined, (mark, combined[-3000:])
    assert not BAR_REDRAW.search(combined)
    assert "examples written" in result.stdout and "partitions" in result.stdout


def test_progress_adds_up_events_and_finished_partitions(capsys):
    """TqdmProgress: events inside partitions move the bar; late or repeated ones do not count twice."""
    from dask_prep.report.build import TqdmProgress
    from dask_prep.stats import AnalysisStats, TokenizeStats

    progress = TqdmProgress(disable=False)
    progress.start("analyse", 3)
    progress.set_total("analyse", 300)
    bar = progress.bars["analyse"]
    assert bar.total == 300
    progress.advance("analyse", 0, 40, 5)
    progress.advance("analyse", 1, 10, 1)
    assert (bar.n, progress._kept_so_far()) == (50, 6)
    progress.advance("analyse", 0, 20, 2)  # partition 0 recomputed elsewhere: the bar does not go back
    assert bar.n == 50
    progress.update("analyse", AnalysisStats(partition=0, read=100, kept=12))
    progress.advance("analyse", 0, 90, 11)  # an event that arrived after the partition's stats
    assert (bar.n, progress._kept_so_far()) == (110, 13)
    progress.update("analyse", AnalysisStats(partition=1, read=100, kept=7))
    progress.update("analyse", AnalysisStats(partition=2, read=100, kept=0))  # no event came
    assert (bar.n, progress._kept_so_far()) == (300, 19)
    progress.finish("analyse")

    progress.start("tokenize", 3)
    for examples in (4, 0, 9):
        progress.update("tokenize", TokenizeStats(partition=0, examples=examples))
    assert progress.examples == 13 and progress.bars["tokenize"].n == 3
    progress.finish("tokenize")
    assert "examples=13" in capsys.readouterr().err


def test_the_summary_says_how_many_partitions_were_reused():
    from dask_prep.report.build import summary_lines

    report = {
        "partitions": {"total": 8, "analysed": 3, "analysis_reused": 5, "tokenized": 8, "tokenization_reused": 0},
        "documents": {"read": 10, "malformed": 0, "rejected": 6, "kept": 4},
        "rejected": {"length": 6},
        "examples": {"before_cap": 3, "after_cap": 3, "dropped": {}, "written": 3},
        "seconds": {"total": 1.0},
    }
    lines = summary_lines(report, resumed=True)
    assert any(re.fullmatch(r"\s*analysis reused\s+5", line) for line in lines), lines
    assert any(re.fullmatch(r"\s*tokenized reused\s+0", line) for line in lines), lines
    fresh = {**report, "partitions": {**report["partitions"], "analysis_reused": 0}}
    assert not any("reused" in line for line in summary_lines(fresh)), "a fresh run has nothing reused to say"
