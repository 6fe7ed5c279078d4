"""Decoding input files: the raw lines of a JSON Lines file (plain, gzip or zstd) and the
rows of a parquet file, up to any damage, and the record count of a file (`scan_file`).

Damage (a truncated or corrupt stream, an unreadable row group) never raises: what comes
before it is read, and the damage is noted in a `FileScan`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from dask_prep.io.inputs import FileSlice, InputError, InputFile

ZSTD_SUFFIXES = (".zst", ".zstd")
_CHUNK = 1 << 20
# Compressed bytes fed to zstd at a time: the output of a call that meets corruption is
# lost, so small feeds keep the lines before the damage.
_ZSTD_FEED = 1 << 15


class TruncatedError(EOFError):
    """A compressed stream that ends inside a frame (a cut-off download or copy)."""


@dataclass
class FileScan:
    records: int
    damage: str | None = None  # the error that stopped reading a damaged file


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


def _zstd_chunks(handle: Any) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-frame) zstd stream; a frame cut short raises.

    fsspec's zstandard reader stops silently at a truncated frame, so half a file would
    pass as a whole one: this decoder checks that every frame reached its end.
    """
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    frame = dctx.decompressobj()
    inside = False  # bytes of an unfinished frame have been fed
    while data := handle.read(_ZSTD_FEED):
        while data:
            out = frame.decompress(data)
            inside = True
            if out:
                yield out
            if frame.eof:  # the next frame (if any) starts in the unused bytes
                data = frame.unused_data
                frame = dctx.decompressobj()
                inside = False
            else:
                data = b""
    if inside:
        raise TruncatedError("the zstd stream ends inside a frame: the file is truncated")


def _gzip_chunks(handle: Any) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-member) gzip stream, up to any damage, which raises.

    Python's gzip reader loses the last chunk before damage (and everything, for junk after
    the last member); here each feed is decoded on its own, and a feed that meets the damage
    is decoded again in small pieces, so every byte before the damage comes out.
    """
    import zlib

    member = zlib.decompressobj(wbits=31)
    inside = False  # bytes of an unfinished member have been fed
    while data := handle.read(_ZSTD_FEED):
        while data:
            if not inside:
                data = data.lstrip(b"\0")  # gzip allows zero padding between members
                if not data:
                    break
            before = member.copy()
            try:
                out = member.decompress(data)
            except zlib.error:
                yield from _decode_until_error(before, data)
                raise
            inside = True
            if out:
                yield out
            if member.eof:  # the next member (if any) starts in the unused bytes
                data = member.unused_data
                member = zlib.decompressobj(wbits=31)
                inside = False
            else:
                data = b""
    if inside:
        raise TruncatedError("the gzip stream ends inside a member: the file is truncated")


def _decode_until_error(member: Any, data: bytes, piece: int = 64) -> Iterator[bytes]:
    """What `member` decodes of `data` before the byte that is damaged."""
    import zlib

    for start in range(0, len(data), piece):
        try:
            out = member.decompress(data[start : start + piece])
        except zlib.error:
            return
        if out:
            yield out
        if member.eof:
            return


def _chunks(path: str) -> Iterator[bytes]:
    if path.lower().endswith(ZSTD_SUFFIXES):
        with fsspec.open(path, "rb") as handle:
            yield from _zstd_chunks(handle)
        return
    if path.lower().endswith(".gz"):
        with fsspec.open(path, "rb") as handle:
            yield from _gzip_chunks(handle)
        return
    with fsspec.open(path, "rb", compression="infer") as handle:
        while data := handle.read(_CHUNK):
            yield data


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines ending in b"\n"; a last line without one is still a line."""
    pending: list[bytes] = []  # pieces of a line that spans chunks
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start : end + 1]
            if pending:
                pending.append(piece)
                piece = b"".join(pending)
                pending = []
            yield piece
            start = end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def iter_raw_lines(path: str, scan: FileScan) -> Iterator[bytes]:
    """Yield raw lines; a damaged stream stops the iteration and is noted in `scan`.

    The unterminated piece of line cut by the damage is part of the damage, not a line.
    A file that cannot be opened at all is an error, not damage.
    """
    try:
        yield from _split_lines(_chunks(path))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except _damage_errors() as exc:
        scan.damage = f"{type(exc).__name__}: {exc}"


def scan_file(file: InputFile) -> FileScan:
    """Count the records of a file; reading stops (and is reported) at damage."""
    if file.kind == "parquet":
        import pyarrow.parquet as pq

        try:
            with fsspec.open(file.path, "rb") as handle:
                return FileScan(records=pq.ParquetFile(handle).metadata.num_rows)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except _parquet_errors() as exc:  # no readable footer: no row group can be found
            return FileScan(records=0, damage=f"{type(exc).__name__}: {exc}")
    scan = FileScan(records=0)
    for _ in iter_raw_lines(file.path, scan):
        scan.records += 1
    return scan


def _parquet_errors() -> tuple[type[BaseException], ...]:
    """What a damaged parquet file raises (a cut footer, a corrupt page)."""
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError, EOFError)


def parquet_rows(
    spec: FileSlice, text_field: str, id_field: str, scan: FileScan | None = None
) -> Iterator[tuple[int, Any, Any]]:
    """(row index, text, id) of the slice; a row group that cannot be read is skipped and
    noted in `scan.damage` (the others are read)."""
    import pyarrow.parquet as pq

    scan = scan if scan is not None else FileScan(records=0)
    with fsspec.open(spec.file.path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = set(parquet.schema_arrow.names)
        if text_field not in names:
            raise InputError(f"{spec.file.path} has no column {text_field!r}; set --text-field")
        columns = [text_field] + ([id_field] if id_field in names else [])
        # Only the row groups that hold the slice are decoded (a file's later partitions
        # would otherwise decode every row before theirs).
        groups: list[tuple[int, int]] = []  # (row group, its first row) holding the slice
        group_start = 0
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if group_start < spec.stop and group_start + rows > spec.start:
                groups.append((group, group_start))
            group_start += rows
        if not groups:
            return
        has_id = id_field in names
        done = [spec.start]  # the next row to yield
        try:  # all the slice's groups in one pass, as long as every one decodes
            yield from _rows_of(parquet, groups, spec.start, spec.stop, columns, has_id, done)
            return
        except _parquet_errors():
            pass
        # A damaged row group: from the one that failed, each group on its own, skipping the bad.
        for group, first in groups:
            rows = parquet.metadata.row_group(group).num_rows
            if first + rows <= done[0]:
                continue
            try:
                yield from _rows_of(parquet, [(group, first)], done[0], spec.stop, columns, has_id, done)
            except _parquet_errors() as exc:
                found = f"row group {group}: {type(exc).__name__}: {str(exc).strip()}"
                scan.damage = f"{scan.damage}; {found}" if scan.damage else found
                done[0] = first + rows


def _rows_of(
    parquet: Any,
    groups: list[tuple[int, int]],
    start: int,
    stop: int,
    columns: list[str],
    has_id: bool,
    done: list[int],
) -> Iterator[tuple[int, Any, Any]]:
    """(row, text, id) for rows [start, stop) of consecutive `groups`; `done[0]` follows the rows yielded."""
    text_field = columns[0]
    position = groups[0][1]
    row_groups = [group for group, _ in groups]
    for batch in parquet.iter_batches(columns=columns, batch_size=4096, row_groups=row_groups):
        end = position + batch.num_rows
        if end > start:
            lo, hi = max(start - position, 0), min(stop - position, batch.num_rows)
            texts = batch.column(text_field).to_pylist()[lo:hi]
            ids = batch.column(columns[1]).to_pylist()[lo:hi] if has_id else [None] * len(texts)
            for row in zip(range(position + lo, position + hi), texts, ids, strict=True):
                done[0] = row[0] + 1
                yield row
        position = end
        if position >= stop:
            return
