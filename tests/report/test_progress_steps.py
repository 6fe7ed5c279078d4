"""Issue 29: the CLI's progress names each step as it begins, and counts the scan's and dedup's tasks."""

from __future__ import annotations

from dask_prep.pipeline.progress import Progress
from dask_prep.report.build import TqdmProgress


def test_a_step_line_where_bars_are_shown_only(capsys):
    TqdmProgress(disable=False).begin("scanning 7 files")
    TqdmProgress(disable=True).begin("finding exact duplicates")  # --quiet
    TqdmProgress(disable=None).begin("analysing")  # not a terminal here (captured): like a CI log
    assert capsys.readouterr().err.splitlines() == ["dask-prep: scanning 7 files"]


def test_a_stage_of_tasks_gets_a_bar_of_tasks(capsys):
    progress = TqdmProgress(disable=False)
    progress.tasks("dedup", 0, 80)
    progress.tasks("dedup", 30, 83)  # the scheduler counts tasks as the graph unfolds
    bar = progress.bars["dedup"]
    assert (bar.n, bar.total) == (30, 83)
    progress.tasks("dedup", 83, 83)
    progress.finish("dedup")
    progress.finish("scan")  # a stage that ended before its first count: nothing to close
    assert "dedup" not in progress.bars
    err = capsys.readouterr().err
    assert "dedup: 100%" in err and "83/83" in err and "task/s" in err


def test_the_base_progress_ignores_steps_and_tasks():
    progress = Progress()
    progress.begin("scanning 1 file")
    progress.tasks("scan", 1, 1)
    progress.finish("scan")


def test_only_a_progress_that_shows_tasks_has_them_counted():
    from dask_prep.pipeline.progress import follows_tasks

    assert follows_tasks(TqdmProgress(disable=True))
    assert not follows_tasks(Progress()) and not follows_tasks(None)  # no progress feed for nobody
