"""Issue 32, case 6 without a cluster: the reader and the run's check find a changed input."""

from __future__ import annotations

import json
import os

import pytest

from dask_prep.io.decoding import scan_file
from dask_prep.io.input_changes import check_unchanged, input_signatures
from dask_prep.io.inputs import InputChangedError, plan_partitions, resolve_inputs
from dask_prep.io.reading import PartitionReader


def _write(path, count: int) -> None:
    path.write_text("".join(json.dumps({"id": i, "text": f"글 {i}"}) + "\n" for i in range(count)), "utf-8")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_a_file_that_ends_before_its_scanned_records_is_named(suffix, tmp_path):
    import gzip

    import zstandard

    pack = {".jsonl": bytes, ".jsonl.gz": gzip.compress, ".jsonl.zst": zstandard.ZstdCompressor().compress}[suffix]
    path = tmp_path / f"a{suffix}"
    body = "".join(json.dumps({"id": i, "text": f"글 {i}"}) + "\n" for i in range(50)).encode()
    path.write_bytes(pack(body))
    files = resolve_inputs([str(path)])
    specs = plan_partitions(files, [scan_file(f).records for f in files], 20)
    path.write_bytes(pack(body[: len(body) // 2]))  # a whole, shorter file: no damage
    with PartitionReader("text", "id") as reader, pytest.raises(InputChangedError, match=str(path)):
        for spec in specs:
            reader.read(spec)


@pytest.mark.parametrize("change", ["grew", "shrank", "rewritten", "removed"])
def test_the_run_check_names_the_file_and_what_changed(change, tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 10)
    files = resolve_inputs([str(path)])
    before = input_signatures(files)
    check_unchanged(files, before)  # unchanged: nothing to say
    if change == "grew":
        _write(path, 11)
    elif change == "shrank":
        _write(path, 9)
    elif change == "rewritten":
        path.write_text("".join(reversed(path.read_text("utf-8").splitlines(keepends=True))), "utf-8")
        os.utime(path, ns=(1, 1))  # the same size; another modification time
    else:
        path.unlink()
    with pytest.raises(InputChangedError) as caught:
        check_unchanged(files, before)
    assert str(path) in str(caught.value) and change in str(caught.value)
