"""The benchmark's process-tree sampler finds the whole tree, as psutil would.

The benchmark sums peak RSS over every process of a run; a descendant it missed would
make the memory figures too low. No timing is asserted here (benchmarks/ measures that).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402  (benchmarks/ is scripts, not a package)

# A parent with two children, one of which has a child of its own, started from a thread
# (a LocalCluster's nannies start workers from the event loop's thread, not the main one).
TREE = """
import subprocess, sys, threading, time
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
spawn_then_sleep = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)"
grandparent = [sys.executable, "-c", spawn_then_sleep, *sleeper]
children = [subprocess.Popen(sleeper)]
thread = threading.Thread(target=lambda: children.append(subprocess.Popen(grandparent)))
thread.start(); thread.join()
time.sleep(60)
"""


@pytest.fixture
def process_tree():
    root = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(root.pid).children(recursive=True)) < 3:
            assert time.monotonic() < deadline, "the test's process tree did not start"
            time.sleep(0.05)
        yield root
    finally:
        for proc in psutil.Process(root.pid).children(recursive=True):
            proc.kill()
        root.kill()
        root.wait()


@pytest.mark.skipif(not common._KERNEL_LISTS_CHILDREN, reason="this kernel has no /proc/<pid>/task/<tid>/children")
def test_descendants_are_the_ones_psutil_finds(process_tree):
    expected = {p.pid for p in psutil.Process(process_tree.pid).children(recursive=True)}
    assert len(expected) == 3
    assert set(common._descendants(process_tree.pid)) == expected


def test_without_the_kernel_lists_psutil_finds_them(process_tree, monkeypatch):
    monkeypatch.setattr(common, "_KERNEL_LISTS_CHILDREN", False)
    expected = {p.pid for p in psutil.Process(process_tree.pid).children(recursive=True)}
    assert len(expected) == 3
    assert set(common._descendants(process_tree.pid)) == expected


def test_sampler_records_every_process_of_the_tree(process_tree):
    sampler = common.TreeSampler(process_tree.pid, interval=0.05).start()
    time.sleep(0.5)
    result = sampler.stop()
    members = {process_tree.pid} | {p.pid for p in psutil.Process(process_tree.pid).children(recursive=True)}
    assert set(result.per_process) == members
    assert result.peak_processes == 4
    assert result.peak_rss >= sum(psutil.Process(pid).memory_info().rss for pid in members) * 0.5


def test_descendants_of_an_ended_process_are_none():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert common._descendants(proc.pid) == []
