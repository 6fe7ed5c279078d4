"""Reading: find the input files, plan partitions of at most N records, read one partition.

Every input line (or parquet row) becomes exactly one `Document`. Lines that cannot be
documents are still returned, with `rejected_by` set to a malformed-input reason, so that
the accounting `read = malformed + rejected + kept` can be checked per partition.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".json", ".json.gz", ".json.zst")
PARQUET_SUFFIXES = (".parquet",)

# Reasons for input that is not a document at all; all count as "malformed".
MALFORMED_REASONS = (
    "not_json",
    "not_object",
    "no_text",
    "invalid_utf8",
    "nul_bytes",
    "empty_text",
    "blank_line",
)


class InputError(ValueError):
    """An input path the run cannot use (missing, unmatched glob, unknown format)."""


@dataclass
class Document:
    doc_id: str
    text: str | None
    source: str
    line: int  # 1-based line (JSON Lines) or row (parquet) within `source`
    rejected_by: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # Filled by the filters for the entity step, so Kiwi runs once per document.
    tokens: list | None = None
    entities: dict | None = None


@dataclass(frozen=True)
class InputFile:
    path: str  # what fsspec opens
    key: str  # stable name used in derived document ids
    kind: str  # "jsonl" or "parquet"


@dataclass(frozen=True)
class PartitionSpec:
    index: int
    file: InputFile
    start: int  # first record (0-based) of the file in this partition
    stop: int  # one past the last record


@dataclass
class FileScan:
    records: int
    damage: str | None = None  # the error that stopped reading a damaged file


def _kind(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def resolve_inputs(inputs: list[str]) -> list[InputFile]:
    """Expand files, directories and globs (local or fsspec URLs) into input files.

    The key of each file, used for derived document ids, is its path relative to the
    directory or glob root it was found under, so ids do not depend on the working
    directory.
    """
    files: list[InputFile] = []
    for given in inputs:
        fs, _, _ = fsspec.get_fs_token_paths(given)
        protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        prefix = "" if protocol in ("file", "local") else f"{protocol}://"
        if glob.has_magic(given):
            matches = sorted(fs.glob(given))
            if not matches:
                raise InputError(f"the glob {given!r} matches no file; check the pattern and quote it")
            root = os.path.dirname(given.split("*")[0].split("?")[0].split("[")[0])
            candidates = [(m, root) for m in matches]
        elif fs.isdir(given):
            found = sorted(p for p in fs.find(given) if _kind(p))
            if not found:
                raise InputError(f"the directory {given!r} holds no .jsonl, .jsonl.gz, .jsonl.zst or .parquet file")
            candidates = [(p, given) for p in found]
        elif fs.exists(given):
            candidates = [(given, os.path.dirname(given))]
        else:
            raise InputError(f"input path {given!r} does not exist; check the path or mount")
        for path, root in candidates:
            kind = _kind(path)
            if kind is None:
                if glob.has_magic(given) or fs.isdir(given):
                    continue
                raise InputError(f"{path!r} is not .jsonl, .jsonl.gz, .jsonl.zst or .parquet; rename it or convert it")
            stripped_root = fs._strip_protocol(root) if root else ""
            stripped = fs._strip_protocol(path)
            key = os.path.relpath(stripped, stripped_root) if stripped_root else os.path.basename(stripped)
            full = path if "://" in path or not prefix else prefix + path
            files.append(InputFile(path=full, key=key, kind=kind))
    return files


def _open(path: str):
    return fsspec.open(path, "rb", compression="infer")


def _damage_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt compressed stream raises (gzip, bz2, lzma, zstd)."""
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _iter_raw_lines(path: str, scan: FileScan) -> Iterator[bytes]:
    """Yield raw lines; a damaged stream stops the iteration and is noted in `scan`."""
    try:
        with _open(path) as handle:
            # Decompressing readers (zstd) cannot iterate lines themselves.
            yield from io.BufferedReader(handle, buffer_size=1 << 20)
    except io.UnsupportedOperation:
        raise
    except _damage_errors() as exc:
        scan.damage = f"{type(exc).__name__}: {exc}"


def scan_file(file: InputFile) -> FileScan:
    """Count the records of a file; reading stops (and is reported) at damage."""
    if file.kind == "parquet":
        import pyarrow.parquet as pq

        with fsspec.open(file.path, "rb") as handle:
            return FileScan(records=pq.ParquetFile(handle).metadata.num_rows)
    scan = FileScan(records=0)
    for _ in _iter_raw_lines(file.path, scan):
        scan.records += 1
    return scan


def plan_partitions(
    files: list[InputFile], counts: list[int], partition_size: int, max_samples: int | None = None
) -> list[PartitionSpec]:
    """Split large files and cover every record once, in input order."""
    specs: list[PartitionSpec] = []
    budget = max_samples if max_samples is not None else float("inf")
    for file, count in zip(files, counts, strict=True):
        count = int(min(count, budget))
        budget -= count
        for start in range(0, count, partition_size):
            specs.append(PartitionSpec(len(specs), file, start, min(start + partition_size, count)))
    return specs


def parse_line(raw: bytes, text_field: str, id_field: str) -> tuple[str | None, Any, str | None]:
    """(text, id value, malformed reason) for one JSON Lines line."""
    if not raw.strip():
        return None, None, "blank_line"
    if b"\x00" in raw:
        return None, None, "nul_bytes"
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, None, "invalid_utf8"
    try:
        record = json.loads(decoded)
    except ValueError:
        return None, None, "not_json"
    if not isinstance(record, dict):
        return None, None, "not_object"
    return _text_of(record.get(text_field), record.get(id_field))


def _text_of(text: Any, doc_id: Any) -> tuple[str | None, Any, str | None]:
    if not isinstance(text, str):
        return None, doc_id, "no_text"
    if "\x00" in text:
        return None, doc_id, "nul_bytes"
    if not text.strip():
        return None, doc_id, "empty_text"
    return text, doc_id, None


def read_partition(spec: PartitionSpec, text_field: str, id_field: str) -> tuple[list[Document], str | None]:
    """The documents of one partition, and the damage that cut the file short, if any."""
    file = spec.file
    docs: list[Document] = []

    def add(index: int, text: str | None, id_value: Any, reason: str | None) -> None:
        line = index + 1
        doc_id = str(id_value) if id_value is not None and not isinstance(id_value, (dict, list)) else None
        docs.append(
            Document(
                doc_id=doc_id or f"{file.key}:{line}",
                text=text,
                source=file.key,
                line=line,
                rejected_by=reason,
            )
        )

    if file.kind == "parquet":
        for index, (text, id_value) in enumerate(_parquet_rows(spec, text_field, id_field), spec.start):
            add(index, *_text_of(text, id_value))
        return docs, None

    scan = FileScan(records=0)
    for index, raw in enumerate(_iter_raw_lines(file.path, scan)):
        if index < spec.start:
            continue
        if index >= spec.stop:
            break
        add(index, *parse_line(raw, text_field, id_field))
    return docs, scan.damage


def _parquet_rows(spec: PartitionSpec, text_field: str, id_field: str) -> Iterator[tuple[Any, Any]]:
    import pyarrow.parquet as pq

    with fsspec.open(spec.file.path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = set(parquet.schema_arrow.names)
        if text_field not in names:
            raise InputError(f"{spec.file.path} has no column {text_field!r}; set --text-field")
        columns = [text_field] + ([id_field] if id_field in names else [])
        position = 0
        for batch in parquet.iter_batches(columns=columns, batch_size=4096):
            end = position + batch.num_rows
            if end > spec.start:
                lo, hi = max(spec.start - position, 0), min(spec.stop - position, batch.num_rows)
                texts = batch.column(text_field).to_pylist()[lo:hi]
                ids = batch.column(id_field).to_pylist()[lo:hi] if id_field in names else [None] * len(texts)
                yield from zip(texts, ids, strict=True)
            position = end
            if position >= spec.stop:
                return
