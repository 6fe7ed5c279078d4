"""Issue 24: input that cannot end a run — odd lines, a FIFO, damaged gzip and parquet files.

Plain functions on real documents of shard 00000 (no cluster), and one CLI check; the
gzip files are checked against what `zcat` recovers from them.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def shard0_lines(shard0) -> list[bytes]:
    import zstandard

    data = zstandard.ZstdDecompressor().decompressobj().decompress(shard0.read_bytes())
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


def read_all(path: Path):
    from dask_prep.io.reading import PartitionReader, plan_partitions, resolve_inputs, scan_file

    (file,) = resolve_inputs([str(path)])
    scan = scan_file(file)
    docs, damaged = [], {}
    with PartitionReader("text", "id") as reader:
        for spec in plan_partitions([file], [scan.records], 100):
            part, part_damage = reader.read(spec)
            docs += part
            damaged.update(part_damage)
    return scan, docs, damaged


def _zcat_lines(path: Path) -> list[bytes]:
    """The complete lines `zcat` recovers (it exits non-zero on damage, after writing them)."""
    if shutil.which("zcat") is None:
        pytest.skip("zcat is not installed")
    out = subprocess.run(["zcat", str(path)], capture_output=True).stdout
    return [line + b"\n" for line in out.split(b"\n")[:-1]]


def test_any_line_is_a_document_or_malformed_with_a_reason():
    from dask_prep.io.reading import MALFORMED_REASONS, parse_line

    nested = b'{"text": "a", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    deeper = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    assert len(nested) < 2100
    for line in (nested, deeper):
        text, _, reason = parse_line(line, "text", "id")
        assert text is None and reason == "too_deep"
    assert "too_deep" in MALFORMED_REASONS
    assert parse_line(b'{"text": "' + "가".encode() * 3 + b'", "id": 1' + b"9" * 5000 + b"}", "text", "id")[2]
    # A UTF-8 BOM (at a file's start) is not part of the JSON.
    assert parse_line(b'\xef\xbb\xbf{"text": "\xea\xb0\x80", "id": "a"}\n', "text", "id") == ("가", "a", None)


def test_bom_file_reads_its_first_document(shard0_lines, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(shard0_lines[:5]))
    _, docs, damaged = read_all(path)
    assert not damaged and [d.rejected_by for d in docs][0] is None
    assert docs[0].text == read_all(_write(tmp_path / "plain.jsonl", shard0_lines[:5]))[1][0].text


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def test_fifo_is_refused_at_scan_time_with_one_line(tmp_path, capfd):
    from dask_prep.cli.main import main
    from dask_prep.io.reading import InputError, resolve_inputs

    fifo = tmp_path / "in" / "stream.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for given in (fifo, fifo.parent):  # named, or found in a directory
        with pytest.raises(InputError, match="FIFO"):
            resolve_inputs([str(given)])
    code = main(["run", str(fifo), "--output-dir", str(tmp_path / "out"), "--model", str(tmp_path), "--quiet"])
    err = capfd.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "FIFO" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_gzip_with_junk_appended_reads_every_line(shard0_lines, tmp_path):
    path = tmp_path / "junk.jsonl.gz"
    junk = bytes(random.Random(7).randrange(1, 256) for _ in range(5000))
    path.write_bytes(gzip.compress(b"".join(shard0_lines[:200])) + junk)
    scan, docs, damaged = read_all(path)
    assert scan.records == 200 == len(docs)
    assert [d.line for d in docs] == list(range(1, 201))
    assert _zcat_lines(path) == shard0_lines[:200]
    assert "junk.jsonl.gz" in damaged and scan.damage


def test_gzip_cut_at_90_percent_reads_every_complete_line(shard0_lines, tmp_path):
    whole = gzip.compress(b"".join(shard0_lines))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: int(len(whole) * 0.9)])
    recoverable = _zcat_lines(path)
    assert 0.8 * len(shard0_lines) < len(recoverable) < len(shard0_lines)
    scan, docs, damaged = read_all(path)
    assert scan.records == len(recoverable) == len(docs)
    assert "cut.jsonl.gz" in damaged
    from dask_prep.io.reading import parse_line

    assert [d.text for d in docs] == [parse_line(line, "text", "id")[0] for line in recoverable]


def test_multi_member_gzip_reads_completely(shard0_lines, tmp_path):
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(shard0_lines[:50])) + gzip.compress(b"".join(shard0_lines[50:120])))
    scan, docs, damaged = read_all(path)
    assert scan.records == 120 == len(docs) and not damaged and scan.damage is None


def _parquet(path: Path, lines: list[bytes], row_group_size: int) -> list[str]:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in lines]
    table = pa.table({"id": [r["id"] for r in records], "text": [r["text"] for r in records]})
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")
    return [r["text"] for r in records]


def test_parquet_cut_in_half_is_damaged_not_fatal(shard0_lines, tmp_path):
    path = tmp_path / "cut.parquet"
    _parquet(path, shard0_lines[:300], 100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    scan, docs, damaged = read_all(path)
    assert scan.records == 0 and docs == [] and scan.damage


def test_parquet_with_a_corrupt_row_group_reads_the_others(shard0_lines, tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "corrupt.parquet"
    texts = _parquet(path, shard0_lines[:300], 100)
    column = pq.ParquetFile(path).metadata.row_group(1).column(1)  # the text column of group 1
    start = column.dictionary_page_offset or column.data_page_offset  # inside group 1's chunk only
    data = bytearray(path.read_bytes())
    data[start + 40 : start + 4000] = bytes(random.Random(3).randrange(256) for _ in range(3960))
    path.write_bytes(bytes(data))
    scan, docs, damaged = read_all(path)
    assert scan.records == 300
    assert "corrupt.parquet" in damaged and "row group 1" in damaged["corrupt.parquet"]
    assert [d.line for d in docs] == list(range(1, 101)) + list(range(201, 301))
    assert [d.text for d in docs] == texts[:100] + texts[200:]


def test_a_run_over_every_kind_of_bad_input_finishes_and_counts_it(
    shard0_lines, tmp_path, pipeline_runner, tokenizer_dir
):
    """The whole pipeline on the session cluster: nothing above ends the run, all is reported."""
    from support.data import seed_config_with

    folder = tmp_path / "in"
    folder.mkdir()
    nested = b'{"id": "deep", "text": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    (folder / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(shard0_lines[:40]) + nested)
    junk = bytes(random.Random(5).randrange(1, 256) for _ in range(5000))
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(b"".join(shard0_lines[40:80])) + junk)
    _parquet(folder / "c.parquet", shard0_lines[80:200], 40)
    data = (folder / "c.parquet").read_bytes()
    (folder / "c.parquet").write_bytes(data[: len(data) // 2])
    run = pipeline_runner([folder], seed_config_with(tokenizer_dir), tmp_path / "out")
    report = run.report
    assert report["documents"]["read"] == 81  # 40 + the nested line, 40 from the gzip, none from c
    assert report["malformed"] == {"too_deep": 1}
    assert report["malformed_locations"]["too_deep"] == ["a.jsonl:41"]
    assert set(report["damaged_files"]) == {"b.jsonl.gz", "c.parquet"}
    assert run.decisions()["a.jsonl:41"] == "too_deep"  # no id could be read: the derived one
    assert run.dataset() is not None
