"""Reading: find the input files, plan partitions of at most N records, read one partition.

Every input line (or parquet row) becomes exactly one `Document`. Lines that cannot be
documents are still returned, with `rejected_by` set to a malformed-input reason, so that
the accounting `read = malformed + rejected + kept` can be checked per partition.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Iterator
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
    "too_deep",  # JSON nested deeper than the parser's recursion limit
    "too_large",  # a line the parser ran out of memory on
    "unparsable",  # any other error while parsing the line
)
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some editors put at the start of a file


# A JSON escape such as "\\ud800" decodes to a lone surrogate: valid JSON, but not text
# that UTF-8 (Arrow, Kiwi, hashing) can encode.
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    # The entities whose mentions become examples (`entities.mentions`); `entities` above
    # is what the `no_repeated_entity` rule judged.
    example_entities: dict | None = None
    # How the analysis rules saw it: "whole" (one whole-document analysis) or "prefix"
    # (progressive analysis decided on a prefix); None = never analysed.
    analysis: str | None = None
    kiwi_chars: int = 0  # characters of it that Kiwi analysed (chunks and whole)


@dataclass(frozen=True)
class InputFile:
    path: str  # what fsspec opens
    key: str  # stable name used in derived document ids
    kind: str  # "jsonl" or "parquet"


@dataclass(frozen=True)
class FileSlice:
    file: InputFile
    start: int  # first record (0-based) of the file in this slice
    stop: int  # one past the last record


@dataclass(frozen=True)
class PartitionSpec:
    """A partition: consecutive records of one large file, or several small files grouped."""

    index: int
    slices: tuple[FileSlice, ...]

    @property
    def records(self) -> int:
        return sum(s.stop - s.start for s in self.slices)

    @property
    def sources(self) -> list[str]:
        return [s.file.key for s in self.slices]


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
            if not prefix:
                _check_regular_file(path)
            stripped_root = fs._strip_protocol(root) if root else ""
            stripped = fs._strip_protocol(path)
            key = os.path.relpath(stripped, stripped_root) if stripped_root else os.path.basename(stripped)
            full = path if "://" in path or not prefix else prefix + path
            files.append(InputFile(path=full, key=key, kind=kind))
    return files


def _check_regular_file(path: str) -> None:
    """Refuse a FIFO, socket or device among local inputs: reading one may block forever."""
    import stat

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"
        raise InputError(f"{path!r} is {kind}, not a regular file; dask-prep reads files only (copy the data to one)")


ZSTD_SUFFIXES = (".zst", ".zstd")
_CHUNK = 1 << 20
# Compressed bytes fed to zstd at a time: the output of a call that meets corruption is
# lost, so small feeds keep the lines before the damage.
_ZSTD_FEED = 1 << 15


class TruncatedError(EOFError):
    """A compressed stream that ends inside a frame (a cut-off download or copy)."""


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


def _iter_raw_lines(path: str, scan: FileScan) -> Iterator[bytes]:
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
    for _ in _iter_raw_lines(file.path, scan):
        scan.records += 1
    return scan


def plan_partitions(
    files: list[InputFile],
    counts: list[int],
    partition_size: int,
    max_samples: int | None = None,
    min_partitions: int = 1,
) -> list[PartitionSpec]:
    """Cover every record once, in input order, in partitions of equal size.

    Large files are split and small files grouped. The size is `partition_size`, or
    less when that gives fewer than `min_partitions` partitions, so a small corpus still
    keeps every worker busy to the end.
    """
    if max_samples is not None:  # the first N records, in input order
        budget, capped = max_samples, []
        for count in counts:
            capped.append(min(count, budget))
            budget -= capped[-1]
        counts = capped
    total = sum(counts)
    size = max(1, min(partition_size, -(-total // max(min_partitions, 1))))
    specs: list[PartitionSpec] = []
    current: list[FileSlice] = []
    room = size
    for file, count in zip(files, counts, strict=True):
        start = 0
        while start < count:
            take = min(room, count - start)
            current.append(FileSlice(file, start, start + take))
            start += take
            room -= take
            if room == 0:
                specs.append(PartitionSpec(len(specs), tuple(current)))
                current, room = [], size
    if current:
        specs.append(PartitionSpec(len(specs), tuple(current)))
    return specs


class BadInputError(InputError):
    """--strict: the input has malformed lines, damaged files or empty files."""


def check_strict(damaged: dict[str, str], empty_files: list[str], partition_stats: Iterable[Any] = ()) -> None:
    """Raise `BadInputError` naming every kind of bad input found (the --strict check).

    `partition_stats` are the stage-1 stats of the partitions (`dask_prep.stats.AnalysisStats`:
    `malformed`, `malformed_locations`, `damaged`); the files' scan gives `damaged` and
    `empty_files` before any partition is analysed, so those fail the run before Kiwi starts.
    """
    damaged = dict(damaged)
    malformed: dict[str, int] = {}
    locations: dict[str, list[str]] = {}
    for stats in partition_stats:
        damaged.update(stats.damaged)
        for reason, count in stats.malformed.items():
            malformed[reason] = malformed.get(reason, 0) + count
        for reason, where in stats.malformed_locations.items():
            locations.setdefault(reason, []).extend(where)
    problems = []
    if damaged:
        problems.append(f"{len(damaged)} damaged file(s): " + "; ".join(f"{k} ({v})" for k, v in damaged.items()))
    if empty_files:
        problems.append(f"{len(empty_files)} empty file(s): {', '.join(empty_files)}")
    if malformed:
        lines = ", ".join(
            f"{reason} {count} (first at {locations[reason][0]})" if locations.get(reason) else f"{reason} {count}"
            for reason, count in sorted(malformed.items())
        )
        problems.append(f"{sum(malformed.values())} malformed line(s): {lines}")
    if problems:
        raise BadInputError(
            "--strict: the input is not clean: "
            + "; ".join(problems)
            + ". Fix or remove it, or run without --strict to skip and count it in report.json"
        )


def parse_line(raw: bytes, text_field: str, id_field: str) -> tuple[str | None, Any, str | None]:
    """(text, id value, malformed reason) for one JSON Lines line; never raises for any bytes."""
    try:
        return _parse_line(raw, text_field, id_field)
    except RecursionError:
        return None, None, "too_deep"
    except MemoryError:
        return None, None, "too_large"
    except Exception:  # one line must not end the run, whatever is in it
        return None, None, "unparsable"


def _parse_line(raw: bytes, text_field: str, id_field: str) -> tuple[str | None, Any, str | None]:
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
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
    if _SURROGATE.search(text):
        return None, doc_id, "invalid_utf8"
    if not text.strip():
        return None, doc_id, "empty_text"
    return text, doc_id, None


def read_partition(spec: PartitionSpec, text_field: str, id_field: str) -> tuple[list[Document], dict[str, str]]:
    """The documents of one partition, and {file: damage} for files cut short."""
    with PartitionReader(text_field, id_field) as reader:
        return reader.read(spec)


class PartitionReader:
    """Reads partitions in input order, going on in each file from where the last one stopped.

    A line of a compressed file can only be reached by decompressing everything before it,
    so a partition that starts at line k of a file skips k lines first. Reading a file's
    partitions one after another with one reader decompresses the file once, not once per
    partition: ~P/2 times the file for P partitions (measured by
    `benchmarks/reading_one_big_file.py`; figures in benchmarks/HISTORY.md).
    """

    def __init__(self, text_field: str, id_field: str) -> None:
        self.text_field = text_field
        self.id_field = id_field
        self._path: str | None = None  # the line file being read, if any
        self._lines: Iterator[bytes] = iter(())
        self._next = 0  # index of the next line to be taken
        self._ahead: bytes | None = None  # a line taken from `_lines` but not yet used
        self._scan = FileScan(records=0)
        self.opened = 0  # line files opened (the tests check that a file is opened once)

    def read(self, spec: PartitionSpec) -> tuple[list[Document], dict[str, str]]:
        """The documents of `spec`, and {file: damage} for files cut short."""
        docs: list[Document] = []
        damaged: dict[str, str] = {}
        for piece in spec.slices:
            if piece.file.kind == "parquet":
                scan = FileScan(records=0)
                rows = _parquet_rows(piece, self.text_field, self.id_field, scan)
                docs.extend(_document(piece.file, i, *_text_of(text, id_value)) for i, text, id_value in rows)
                if scan.damage:
                    damaged[piece.file.key] = scan.damage
                continue
            docs.extend(self._read_lines(piece))
            if self._scan.damage:
                damaged[piece.file.key] = self._scan.damage
        return docs, damaged

    def _read_lines(self, piece: FileSlice) -> Iterator[Document]:
        if piece.file.path != self._path or self._next > piece.start:
            self.close()
            self._path, self._scan = piece.file.path, FileScan(records=0)
            self._lines, self._next = _iter_raw_lines(piece.file.path, self._scan), 0
            self.opened += 1
        while self._next < piece.stop:
            raw = self._take()
            if raw is None:
                return
            index = self._next
            self._next += 1
            if index >= piece.start:
                yield _document(piece.file, index, *parse_line(raw, self.text_field, self.id_field))
        # As a reader that stops on seeing the next line: a cut right after the slice is
        # found, and reported, by the partition that ends there.
        self._ahead = self._take()

    def _take(self) -> bytes | None:
        raw, self._ahead = self._ahead, None
        return raw if raw is not None else next(self._lines, None)

    def close(self) -> None:
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()  # closes the file now, not when the generator is collected
        self._path, self._lines, self._next, self._ahead = None, iter(()), 0, None

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _document(file: InputFile, index: int, text: str | None, id_value: Any, reason: str | None) -> Document:
    line = index + 1
    doc_id = str(id_value) if id_value is not None and not isinstance(id_value, (dict, list)) else None
    if doc_id is not None and _SURROGATE.search(doc_id):
        doc_id = None  # not writable as UTF-8: fall back to the derived id
    return Document(doc_id=doc_id or f"{file.key}:{line}", text=text, source=file.key, line=line, rejected_by=reason)


def _parquet_errors() -> tuple[type[BaseException], ...]:
    """What a damaged parquet file raises (a cut footer, a corrupt page)."""
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError, EOFError)


def _parquet_rows(
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
