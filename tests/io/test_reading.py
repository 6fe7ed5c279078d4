"""Unit tests of dask_prep.io.reading: parsing lines, planning partitions, reading them, resolving inputs.

Inline records, files written to tmp_path and the repo's own sample (sample/ko_sample.jsonl):
no cluster, no ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.data import SAMPLE, read_all

from dask_prep.io.reading import (
    InputError,
    PartitionReader,
    parse_line,
    plan_partitions,
    read_partition,
    resolve_inputs,
    scan_file,
)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\n", "blank_line"),
        (b"  \t\r\n", "blank_line"),
        (b'{"text": "\xec\x84\x9c\x00\xec\x9a\xb8"}\n', "nul_bytes"),
        (b'{"text": "a\\u0000b"}\n', "nul_bytes"),
        (b'{"text": "\xff\xfe"}\n', "invalid_utf8"),
        (b'{"text": "\\ud800 lone surrogate"}\n', "invalid_utf8"),
        (b'{"text": "cut off\n', "not_json"),
        (b"text=hello\n", "not_json"),
        (b'["\xec\x84\x9c\xec\x9a\xb8"]\n', "not_object"),
        (b'"just a string"\n', "not_object"),
        (b'{"body": "\xec\x84\x9c\xec\x9a\xb8"}\n', "no_text"),
        (b'{"text": 42}\n', "no_text"),
        (b'{"text": null}\n', "no_text"),
        (b'{"text": " \\n\\t "}\n', "empty_text"),
    ],
)
def test_parse_line_malformed_reasons(raw, reason):
    text, _, got = parse_line(raw, "text", "id")
    assert (text, got) == (None, reason)


def test_parse_line_valid_records_and_custom_fields():
    assert parse_line('{"id": "d1", "text": "서울은 크다."}\n'.encode(), "text", "id") == ("서울은 크다.", "d1", None)
    assert parse_line('{"id": 7, "text": "부산"}'.encode(), "text", "id") == ("부산", 7, None)
    assert parse_line('{"key": "k", "body": "대구"}'.encode(), "body", "key") == ("대구", "k", None)
    assert parse_line('{"text": "광주"}'.encode(), "text", "id") == ("광주", None, None)


def _covered(specs) -> list[tuple[str, int]]:
    return [(s.file.key, i) for spec in specs for s in spec.slices for i in range(s.start, s.stop)]


def _files(*names: str):
    from dask_prep.io.reading import InputFile

    return [InputFile(path=f"/data/{n}", key=n, kind="jsonl") for n in names]


def test_plan_partitions_splits_a_large_file():
    files = _files("big.jsonl")
    specs = plan_partitions(files, [4500], 2000)
    assert [(s.slices[0].start, s.slices[0].stop) for s in specs] == [(0, 2000), (2000, 4000), (4000, 4500)]
    assert [s.index for s in specs] == [0, 1, 2]
    assert _covered(specs) == [("big.jsonl", i) for i in range(4500)]


def test_plan_partitions_groups_small_files():
    files = _files("a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl", "e.jsonl")
    specs = plan_partitions(files, [300, 300, 0, 300, 300], 1000)
    assert [s.records for s in specs] == [1000, 200]
    assert specs[0].sources == ["a.jsonl", "b.jsonl", "d.jsonl", "e.jsonl"]
    assert specs[1].sources == ["e.jsonl"]
    expected = [(n, i) for n, c in zip("abcde", [300, 300, 0, 300, 300], strict=True) for i in range(c)]
    assert _covered(specs) == [(f"{n}.jsonl", i) for n, i in expected]


def test_plan_partitions_cuts_a_small_corpus_for_all_workers():
    specs = plan_partitions(_files("sample.jsonl"), [40], 2000, min_partitions=8)
    assert [s.records for s in specs] == [5] * 8
    assert _covered(specs) == [("sample.jsonl", i) for i in range(40)]


def test_plan_partitions_max_samples_and_empty_input():
    specs = plan_partitions(_files("a.jsonl", "b.jsonl"), [1500, 1000], 1000, max_samples=1800)
    assert _covered(specs) == [("a.jsonl", i) for i in range(1500)] + [("b.jsonl", i) for i in range(300)]
    assert all(s.records <= 1000 for s in specs)
    assert plan_partitions(_files("a.jsonl"), [0], 1000) == []


def test_scan_counts_the_lines_the_reader_reads(tmp_path):
    import zstandard

    from dask_prep.io.decoding import FileScan, iter_raw_lines

    for name, data in [
        ("end.jsonl", b'{"text": "\xea\xb0\x80"}\n\n{"text": "b"}\n'),
        ("open.jsonl", b'{"text": "a"}\n{"text": "b"}'),
        ("empty.jsonl", b""),
        ("crlf.jsonl.zst", zstandard.ZstdCompressor().compress(b'{"text": "a"}\r\n' * 5 + b"tail")),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        (file,) = resolve_inputs([str(path)])
        scan = scan_file(file)
        assert scan.damage is None
        assert scan.records == len(list(iter_raw_lines(str(path), FileScan(records=0)))), name


def _specs_of(paths: list[Path], partition_size: int):
    files = resolve_inputs([str(p) for p in paths])
    return plan_partitions(files, [scan_file(f).records for f in files], partition_size)


def test_one_reader_reads_consecutive_partitions_of_a_file_in_one_pass(tmp_path):
    import zstandard

    lines = [json.dumps({"id": f"z{i}", "text": f"문서 {i}번의 본문이다."}, ensure_ascii=False) for i in range(1000)]
    lines[37] = "{not json"
    big = tmp_path / "big.jsonl.zst"
    big.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    small = tmp_path / "small.jsonl"
    small.write_text('{"id": "s0", "text": "작은 파일"}\n{"id": "s1", "text": "둘째 줄"}\n', encoding="utf-8")
    specs = _specs_of([big, small], 64)
    assert len(specs) == 16 and len(specs[-1].slices) == 2  # the last one spans both files
    one_by_one = [read_partition(spec, "text", "id") for spec in specs]
    assert sum(len(docs) for docs, _ in one_by_one) == 1002

    with PartitionReader("text", "id") as reader:
        assert [reader.read(spec) for spec in specs] == one_by_one
    assert reader.opened == 2  # each file once, however many partitions it has

    # Going back (a partition before the one just read) starts the file again; same documents.
    with PartitionReader("text", "id") as reader:
        assert [reader.read(spec) for spec in reversed(specs)] == one_by_one[::-1]
    assert reader.opened == 17  # big.jsonl.zst for every partition, small.jsonl once


def test_a_parquet_partition_reads_the_row_groups_that_hold_it(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    table = pa.table({"id": [f"p{i}" for i in range(1000)], "text": [f"{i}번째 문서의 본문" for i in range(1000)]})
    pq.write_table(table, path, row_group_size=90)
    specs = _specs_of([path], 64)
    decoded: list[list[int]] = []  # the row groups each partition asked for
    iter_batches = pq.ParquetFile.iter_batches

    def recording(self, *args, **kwargs):
        decoded.append(list(kwargs["row_groups"]))
        return iter_batches(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    with PartitionReader("text", "id") as reader:
        parts = [reader.read(spec)[0] for spec in specs]
    # Rows [64k, 64k+64) lie in the groups of 90 rows from 64k // 90 to (64k + 63) // 90.
    assert decoded == [list(range(64 * k // 90, min(64 * k + 63, 999) // 90 + 1)) for k in range(len(specs))]
    assert [d.doc_id for part in parts for d in part] == [f"p{i}" for i in range(1000)]
    assert [d.line for part in parts for d in part] == list(range(1, 1001))
    assert all(d.text == f"{int(d.doc_id[1:])}번째 문서의 본문" for part in parts for d in part)


def test_reading_tasks_group_consecutive_partitions_only_when_there_are_many(monkeypatch):
    from dask_prep.io.reading import FileSlice, InputFile, PartitionSpec
    from dask_prep.pipeline import bags

    monkeypatch.setattr(bags, "total_threads", lambda: 1)

    def specs(files: int, per_file: int) -> list[PartitionSpec]:
        out = []
        for f in range(files):
            file = InputFile(path=f"/data/{f}.jsonl.zst", key=f"{f}.jsonl.zst", kind="jsonl")
            out += [PartitionSpec(len(out) + i, (FileSlice(file, 10 * i, 10 * i + 10),)) for i in range(per_file)]
        return out

    def tasks(bag) -> list[list[int]]:
        import dask

        return [[spec.index for spec in part] for part in dask.compute(*bag.to_delayed(), scheduler="sync")]

    few = specs(7, 1)  # one partition per file: one per task, as before
    assert tasks(bags.partition_bag(few)) == [[i] for i in range(7)]
    many = specs(1, 100)  # one file in 100 partitions: consecutive ones share a task
    grouped = tasks(bags.partition_bag(many))
    assert [i for part in grouped for i in part] == list(range(100))
    assert len(grouped) >= bags.PARTITIONS_PER_THREAD and max(map(len, grouped)) <= bags.MAX_SPECS_PER_TASK
    assert tasks(bags.partition_bag(many, reading=False)) == [[i] for i in range(100)]


@pytest.fixture
def input_tree(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jsonl", "sub/b.jsonl.zst", "sub/c.parquet", "notes.txt", "d.jsonl.gz"):
        (root / name).write_bytes(b"")
    return root


def test_resolve_a_file_a_directory_and_a_glob(input_tree, monkeypatch):
    [single] = resolve_inputs([str(input_tree / "a.jsonl")])
    assert (single.key, single.kind) == ("a.jsonl", "jsonl")

    found = resolve_inputs([str(input_tree)])
    assert [(f.key, f.kind) for f in found] == [
        ("a.jsonl", "jsonl"),
        ("d.jsonl.gz", "jsonl"),
        ("sub/b.jsonl.zst", "jsonl"),
        ("sub/c.parquet", "parquet"),
    ]  # notes.txt is skipped inside a directory

    globbed = resolve_inputs([str(input_tree / "sub" / "*")])
    assert [f.key for f in globbed] == ["b.jsonl.zst", "c.parquet"]

    # Keys, and so derived ids, do not depend on the working directory.
    monkeypatch.chdir(input_tree.parent)
    assert [f.key for f in resolve_inputs(["corpus"])] == [f.key for f in found]
    assert resolve_inputs(["corpus/a.jsonl"])[0].key == "a.jsonl"


def test_resolve_errors(input_tree, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        resolve_inputs([str(tmp_path / "nowhere.jsonl")])
    with pytest.raises(InputError, match="matches no file"):
        resolve_inputs([str(input_tree / "*.csv")])
    with pytest.raises(InputError, match="is not .jsonl"):
        resolve_inputs([str(input_tree / "notes.txt")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no .jsonl"):
        resolve_inputs([str(empty)])


def test_ids_come_from_the_id_field_or_from_file_and_line(tmp_path, monkeypatch):
    lines = [
        {"text": "서울은 한국의 수도이다."},
        {"id": "doc-7", "text": "부산은 항구 도시이다."},
        {"id": 12, "text": "대구는 분지에 있다."},
        {"id": {"nested": 1}, "text": "광주는 호남에 있다."},
        None,  # a malformed line keeps its place and gets a derived id
        {"text": "대전은 충청에 있다."},
    ]
    path = tmp_path / "data" / "part.jsonl"
    path.parent.mkdir()
    path.write_text(
        "".join("{not json\n" if r is None else json.dumps(r, ensure_ascii=False) + "\n" for r in lines),
        encoding="utf-8",
    )
    docs = read_all([str(path)], 2)
    assert [d.doc_id for d in docs] == ["part.jsonl:1", "doc-7", "12", "part.jsonl:4", "part.jsonl:5", "part.jsonl:6"]
    assert [d.line for d in docs] == [1, 2, 3, 4, 5, 6]
    assert [d.rejected_by for d in docs] == [None, None, None, None, "not_json", None]
    # The same ids for another partitioning, another working directory, a directory input.
    monkeypatch.chdir(tmp_path)
    for again in (read_all(["data/part.jsonl"], 1), read_all([str(path)], 100)):
        assert [(d.doc_id, d.text) for d in again] == [(d.doc_id, d.text) for d in docs]
    assert [d.doc_id for d in read_all(["data"], 3)][0] == "part.jsonl:1"


def test_the_sample_reads_cleanly(sample_lines):
    docs = read_all([str(SAMPLE)], 7)
    assert [d.doc_id for d in docs] == [line["id"] for line in sample_lines]
    assert [d.text for d in docs] == [line["text"] for line in sample_lines]
    assert all(d.rejected_by is None for d in docs)
