"""Issue 32, case 6: an input that changes during the run (shorter, longer, replaced) stops it
with one line naming the file; a file that grew is never read in part."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.data import TOKENIZER

pytestmark = pytest.mark.cluster  # LocalClusters and dask-prep processes

LINES = 600


@pytest.fixture(scope="module")
def lines(shard0) -> list[bytes]:
    import zstandard

    data = zstandard.ZstdDecompressor().decompressobj().decompress(shard0.read_bytes())
    return [line + b"\n" for line in data.split(b"\n")[:LINES]]


def _shorter(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines[: LINES // 3]))


def _longer(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(lines[:50]))


def _replaced(path: Path, lines: list[bytes]) -> None:
    """The same size, other content, under the same name (written beside it and renamed)."""
    other = path.with_suffix(".new")
    other.write_bytes(b"".join(reversed(lines)))
    os.replace(other, path)


CHANGES = {"shorter": _shorter, "longer": _longer, "replaced": _replaced}


def _change_after_scan(output_dir: Path, change) -> threading.Thread:
    """Apply `change` as soon as the run has scanned its input (its manifest exists)."""

    def wait_and_change() -> None:
        deadline = time.monotonic() + 300
        while not (output_dir / "manifest.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        change()

    thread = threading.Thread(target=wait_and_change, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_file_changed_during_the_run_stops_it_naming_the_file(name, lines, seed_config, client, tmp_path):
    from dask_prep.io.inputs import InputChangedError
    from dask_prep.pipeline.graph import Pipeline

    data = tmp_path / "a.jsonl"
    data.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    changing = _change_after_scan(out, lambda: CHANGES[name](data, lines))
    with client.as_current(), pytest.raises(InputChangedError) as caught:
        pipeline = Pipeline([str(data)], seed_config, str(out))
        pipeline.partitions(100)
        pipeline.run()
    changing.join()
    message = str(caught.value)
    assert str(data) in message and "changed during the run" in message and "\n" not in message
    assert not (out / "entity_coref_v2_2048").exists()  # nothing published


def test_the_cli_says_so_in_one_line_with_exit_2(lines, tmp_path):
    if not TOKENIZER.is_dir():
        pytest.skip(f"the shared tokenizer is not at {TOKENIZER}")
    data = tmp_path / "a.jsonl"
    data.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dask_prep", "run", str(data), "--model", str(TOKENIZER)]
    command += ["--output-dir", str(out), "--partition-size", "100", "--n-workers", "1", "--quiet"]
    command += ["--dashboard-address", ":0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    changing = _change_after_scan(out, lambda: _longer(data, lines))
    _, err = proc.communicate(timeout=600)
    changing.join()
    assert proc.returncode == 2, err
    problems = [line for line in err.strip().splitlines() if line.startswith("dask-prep: error: ")]
    assert len(err.strip().splitlines()) == 1 and len(problems) == 1, err
    assert str(data) in problems[0] and "grew" in problems[0]
