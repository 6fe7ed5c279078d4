"""Reading: one partition's records as `Document`s, in input order.

Every input line (or parquet row) becomes exactly one `Document`. Lines that cannot be
documents are still returned, with `rejected_by` set to a malformed-input reason, so that
the accounting `read = malformed + rejected + kept` can be checked per partition.

This module is also where the rest of the pipeline gets its input names: finding files
and planning partitions (`dask_prep.io.inputs`) and counting a file's records
(`dask_prep.io.decoding`) are re-exported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from dask_prep.document import Document
from dask_prep.io.decoding import FileScan, iter_raw_lines, parquet_rows, scan_file
from dask_prep.io.inputs import (
    BadInputError,
    FileSlice,
    InputChangedError,
    InputError,
    InputFile,
    PartitionSpec,
    check_strict,
    plan_partitions,
    resolve_inputs,
)

__all__ = [
    "MALFORMED_REASONS",
    "BadInputError",
    "Document",
    "FileScan",
    "FileSlice",
    "InputChangedError",
    "InputError",
    "InputFile",
    "PartitionReader",
    "PartitionSpec",
    "check_strict",
    "parse_line",
    "plan_partitions",
    "read_partition",
    "resolve_inputs",
    "scan_file",
]

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
    partition (which adds up to about P/2 times the file for P partitions; measured by
    `benchmarks/reading_one_big_file.py`, figures in benchmarks/HISTORY.md).
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
            before = len(docs)
            if piece.file.kind == "parquet":
                scan = FileScan(records=0)
                rows = parquet_rows(piece, self.text_field, self.id_field, scan)
                docs.extend(_document(piece.file, i, *_text_of(text, id_value)) for i, text, id_value in rows)
            else:
                docs.extend(self._read_lines(piece))
                scan = self._scan  # after reading: a file opened for this piece has a scan of its own
            if scan.damage:
                damaged[piece.file.key] = scan.damage
            elif len(docs) - before < piece.stop - piece.start:
                # Undamaged, yet fewer records than the scan counted: the file was cut or replaced.
                raise InputChangedError(
                    f"input file {piece.file.path} changed during the run: reading it ran out at record "
                    f"{piece.start + len(docs) - before}, where the scan counted at least {piece.stop}; "
                    "rerun (with --overwrite) once it no longer changes"
                )
        return docs, damaged

    def _read_lines(self, piece: FileSlice) -> Iterator[Document]:
        if piece.file.path != self._path or self._next > piece.start:
            self.close()
            self._path, self._scan = piece.file.path, FileScan(records=0)
            self._lines, self._next = iter_raw_lines(piece.file.path, self._scan), 0
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
    return Document(
        doc_id=doc_id or f"{file.key}:{line}", text=text, source=file.key, line=line, rejected_by=reason, path=file.path
    )
