"""Inputs that change while a run reads them: shorter, longer or replaced files end the run.

The run notes each input's signature (size, modification time, ETag on a store) before it
scans, and compares after the last stage that reads the input: a file that grew, shrank,
was replaced or removed in between is named in one line (`InputChangedError`, exit 2),
never read in part. The reader itself (`reading.PartitionReader`) stops at once on a file
that ends before the records the scan counted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dask_prep.io import storage
from dask_prep.io.inputs import InputChangedError, InputFile

Signatures = dict[str, dict[str, Any]]


def _fresh_signature(path: str) -> dict[str, Any] | None:
    """The file's signature now (a store's cached listing is dropped first); None if it is gone."""
    fs, inner = storage.filesystem(path)
    fs.invalidate_cache(inner)
    try:
        return storage.signature(path)
    except FileNotFoundError:
        return None


def input_signatures(files: list[InputFile]) -> Signatures:
    """{path: signature} of every input (on a store, several requests at a time)."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="dask-prep-inputs") as pool:
        return dict(zip((f.path for f in files), pool.map(_fresh_signature, [f.path for f in files]), strict=True))


def check_unchanged(files: list[InputFile], before: Signatures) -> None:
    """Raise `InputChangedError` naming the first input whose signature is not the one in `before`."""
    now = input_signatures(files)
    for file in files:
        old, new = before.get(file.path), now[file.path]
        if old == new:
            continue
        if new is None:
            what = "it was removed"
        elif old is not None and old.get("size") != new.get("size"):
            grew = "grew" if (new.get("size") or 0) > (old.get("size") or 0) else "shrank"
            what = f"it {grew} from {old.get('size')} to {new.get('size')} bytes"
        else:
            what = "it was rewritten (same size, another modification time or ETag)"
        raise InputChangedError(
            f"input file {file.path} changed during the run ({what}); nothing was published: "
            "rerun (with --overwrite) once it no longer changes"
        )
