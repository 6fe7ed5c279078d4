"""Inputs: find the input files, plan partitions of at most N records over them, and the
--strict check of what reading found.

A partition is consecutive records of one large file or several small files grouped;
`dask_prep.io.decoding` counts a file's records, `dask_prep.io.reading` reads a partition.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".json", ".json.gz", ".json.zst")
PARQUET_SUFFIXES = (".parquet",)


class InputError(ValueError):
    """An input path the run cannot use (missing, unmatched glob, unknown format)."""


class InputChangedError(InputError):
    """An input file changed (shorter, longer, replaced) while the run was reading it."""


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


def _kind(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def resolve_inputs(inputs: list[str], repeated: list[str] | None = None) -> list[InputFile]:
    """Expand files, directories and globs (local or fsspec URLs) into input files.

    The key of each file, used for derived document ids, is its path relative to the
    directory or glob root it was found under, so ids do not depend on the working
    directory. A file found again (the same resolved path, e.g. a directory and a file in
    it, or a link to it) is read once, under its first name; its other names go to `repeated`.
    """
    files: list[InputFile] = []
    seen: set = set()
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
            identity = _identity(full, local=not prefix)
            if identity in seen:
                if repeated is not None:
                    repeated.append(full)
                continue
            seen.add(identity)
            files.append(InputFile(path=full, key=key, kind=kind))
    return files


def _identity(path: str, local: bool) -> Any:
    """What makes two names one file: a local file's device and inode (links, `a/../a`), a URL itself."""
    if not local:
        return path
    info = os.stat(path)
    return (info.st_dev, info.st_ino)


def _check_regular_file(path: str) -> None:
    """Refuse a FIFO, socket or device among local inputs: reading one may block forever."""
    import stat

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"
        raise InputError(f"{path!r} is {kind}, not a regular file; dask-prep reads files only (copy the data to one)")


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
