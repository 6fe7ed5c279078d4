"""Issue 32, case 5: a disk that fills up at any point of a run gives one line naming the file
being written (exit 2), never a library's traceback; with room enough, the clean dataset.

Each test mounts a small tmpfs of its own (root only; skipped, saying why, elsewhere) and
unmounts it after.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from support.data import SAMPLE, SAMPLE_TOKENIZER, seed_config_with

pytestmark = pytest.mark.cluster  # LocalClusters and dask-prep processes

# tmpfs sizes that fill up at different points of a run over the sample: the lock and
# manifest, the stage parts, `datasets`' Arrow cache (the clean run's parts take ~280 kB, its
# dataset ~1.2 MB), saving the dataset, the parquet shards and reports; the last has room.
SIZES_KB = [4, 40, 160, 400, 800, 1300, 1700, 2200, 8000]


@pytest.fixture
def small_disk(tmp_path):
    """mount(kilobytes) -> a directory on a tmpfs of that size, unmounted after the test."""
    mounted: list[Path] = []

    def mount(kilobytes: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (root and CAP_SYS_ADMIN needed): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    import gc

    for point in mounted:
        gc.collect()  # a dataset of the run may still map files on it
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(point)], check=True)  # gone once its last file closes


@pytest.fixture(scope="module")
def sample_config():
    return seed_config_with(SAMPLE_TOKENIZER)


@pytest.fixture(scope="module")
def clean_rows(pipeline_runner, sample_config, tmp_path_factory):
    run = pipeline_runner([SAMPLE], sample_config, tmp_path_factory.mktemp("clean") / "out")
    return sorted((r["doc_id"], r["coref_pos"], tuple(r["input_ids"])) for r in run.rows())


@pytest.mark.parametrize("kilobytes", SIZES_KB)
def test_a_full_disk_anywhere_names_the_file(kilobytes, small_disk, pipeline_runner, sample_config, clean_rows):
    out = small_disk(kilobytes) / "out"
    try:
        run = pipeline_runner([SAMPLE], sample_config, out)
    except OSError as exc:
        assert exc.errno in (errno.ENOSPC, errno.EDQUOT), repr(exc)
        assert str(out) in str(exc) and "\n" not in str(exc), str(exc)
        print(f"{kilobytes} kB: {exc}")
        return
    assert kilobytes > 1000  # a disk too small for the run cannot have given the dataset
    assert sorted((r["doc_id"], r["coref_pos"], tuple(r["input_ids"])) for r in run.rows()) == clean_rows


def test_the_cli_says_so_in_one_line_with_exit_2_while_the_dataset_is_published(small_disk):
    out = small_disk(800) / "out"
    command = [sys.executable, "-m", "dask_prep", "run", str(SAMPLE), "--model", str(SAMPLE_TOKENIZER)]
    command += ["--output-dir", str(out), "--quiet", "--dashboard-address", ":0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dask-prep: error: "), done.stderr
    # The workers publish the dataset (issue 30): no Arrow cache; the line names the file being written.
    assert "No space left on device" in lines[0] and f"while writing {out}/" in lines[0]
