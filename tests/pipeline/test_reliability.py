"""Issue 5: dirty input, pathological text, a killed worker, an interrupted run, safe output.

Everything is real: worker processes (the session `client`, one of whose workers is
killed, or the LocalCluster the CLI starts), Kiwi, the shared tokenizer, and real
documents from ../shared. Runs read a few hundred documents of shard 00000 so that the
file stays within a few minutes on two cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.data import seed_config_with
from support.runs import interrupt_after

REPO = Path(__file__).resolve().parents[2]
SEQ_LEN = 2048
SAMPLES = 400  # documents of shard 00000 in the kill, interrupt and reference runs (~100 reach Kiwi)


# ---- helpers ---------------------------------------------------------------------------


def _decompress(data: bytes) -> bytes:
    """Everything a zstd stream decodes to, read independently of dask_prep (no end check)."""
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _lines(data: bytes) -> list[bytes]:
    """The complete (newline-terminated) lines of decoded bytes."""
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


def dataset_rows(output_dir: Path) -> list[tuple]:
    """(doc_id, coref_pos, target, digest of the whole row) for every row, in saved order."""
    import datasets

    dataset = datasets.load_from_disk(str(Path(output_dir) / f"entity_coref_v2_{SEQ_LEN}"))
    rows = []
    for row in dataset:
        digest = hashlib.sha1(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
        rows.append((row["doc_id"], row["coref_pos"], row["target"], digest))
    return rows


def decisions(output_dir: Path) -> dict[tuple[str, int], tuple[str, str | None]]:
    """{(source, line): (doc_id, rejected_by)} from DIR/decisions."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(output_dir) / "decisions", columns=["doc_id", "source", "line", "rejected_by"])
    out = {}
    for row in table.to_pylist():
        key = (row["source"], row["line"])
        assert key not in out, f"{key} has two decisions"
        out[key] = (row["doc_id"], row["rejected_by"])
    return out


def cli(*args: str, **popen) -> subprocess.Popen:
    """`python -m dask_prep run ...` as a user would start it."""
    return subprocess.Popen(
        [sys.executable, "-m", "dask_prep", "run", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _traceback_free_one_liner(stderr: str) -> str:
    """The `dask-prep: error:` line; there must be exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("dask-prep: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _finished(stats_dir: Path, stage: str = "analyse") -> set[int]:
    """Partitions whose stage is done: their stats file, written last, exists."""
    return {int(p.stem.split("-")[1]) for p in stats_dir.glob(f"{stage}-*.json")}


def _index(key) -> int:
    """The partition of a bag task key ('_analyse-<token>', i): one spec per partition."""
    return int(key[1]) if isinstance(key, tuple) else int(str(key).rstrip(")").rsplit(",", 1)[1])


@pytest.fixture(scope="module")
def shard0_lines(shard0) -> list[bytes]:
    return _lines(_decompress(shard0.read_bytes()))


@pytest.fixture(scope="module")
def reference(pipeline_runner, tokenizer_dir, shard0, tmp_path_factory):
    """The clean run the killed and the interrupted runs must equal (no dedup, as in those)."""
    config = seed_config_with(tokenizer_dir, input__max_samples=SAMPLES, input__dedup=False)
    run = pipeline_runner([shard0], config, tmp_path_factory.mktemp("reference"))
    rows = dataset_rows(run.output_dir)
    assert len(rows) > 50, "the reference has too few examples to compare anything"
    return run


# ---- damaged compressed files (plain functions, no cluster) ----------------------------


def _scan(path: Path):
    from dask_prep.io.reading import resolve_inputs, scan_file

    (file,) = resolve_inputs([str(path)])
    return file, scan_file(file)


def read_all(path: Path):
    from dask_prep.io.reading import PartitionReader, plan_partitions, read_partition

    file, scan = _scan(path)
    specs = plan_partitions([file], [scan.records], 100)
    docs, damaged = [], {}
    for spec in specs:
        part_docs, part_damage = read_partition(spec, "text", "id")
        docs += part_docs
        damaged.update(part_damage)
    # One reader through the partitions in order (as a stage-1 task reads them) reads the
    # file once and finds the same documents and the same damage.
    with PartitionReader("text", "id") as reader:
        in_one_pass = [reader.read(spec) for spec in specs]
    assert [d for part, _ in in_one_pass for d in part] == docs
    assert {k: v for _, part_damage in in_one_pass for k, v in part_damage.items()} == damaged
    assert reader.opened == (1 if specs else 0)
    return scan, docs, damaged


def test_truncated_zstd_is_reported_as_damaged(shard0, tmp_path):
    """zstandard's stream reader ends quietly at a cut frame; the reader must not."""
    data = shard0.read_bytes()
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(data[: len(data) // 2])
    expected = _lines(_decompress(cut.read_bytes()))
    assert 0 < len(expected) < 2000

    scan, docs, damaged = read_all(cut)
    assert scan.damage and "truncated" in scan.damage
    assert scan.records == len(expected)  # every line before the cut, none after
    assert [d.line for d in docs] == list(range(1, len(expected) + 1))
    assert damaged == {"cut.jsonl.zst": scan.damage}  # the partition that reached the cut says so
    assert all(d.rejected_by is None for d in docs[:100])  # real documents, read as such


def test_corrupt_zstd_and_truncated_gzip_keep_the_lines_before_the_damage(shard0, tmp_path):
    import gzip

    data = shard0.read_bytes()
    flipped = bytearray(data)
    middle = len(data) // 2
    flipped[middle : middle + 64] = bytes(b ^ 0xFF for b in flipped[middle : middle + 64])
    corrupt = tmp_path / "corrupt.jsonl.zst"
    corrupt.write_bytes(bytes(flipped))
    packed = gzip.compress(_decompress(data))
    cut_gz = tmp_path / "cut.jsonl.gz"
    cut_gz.write_bytes(packed[: len(packed) // 2])

    for path in (corrupt, cut_gz):
        scan, docs, damaged = read_all(path)
        assert scan.damage, path.name
        assert 500 < scan.records < 2000, (path.name, scan.records)  # the first half was read
        assert len(docs) == scan.records and damaged == {path.name: scan.damage}


def test_whole_multi_frame_zstd_and_zstd_suffix_read_completely(shard0_lines, tmp_path):
    """Two frames back to back are one file, not a truncation; `.zstd` is zstd too."""
    import zstandard

    raw = b"".join(shard0_lines[:300])
    half = b"".join(shard0_lines[:150])
    compressor = zstandard.ZstdCompressor()
    for name in ("frames.jsonl.zst", "frames.jsonl.zstd"):
        path = tmp_path / name
        path.write_bytes(compressor.compress(half) + compressor.compress(raw[len(half) :]))
        scan, docs, damaged = read_all(path)
        assert scan.damage is None and damaged == {}
        assert scan.records == 300 and all(d.rejected_by is None for d in docs)


def test_last_line_without_newline_and_empty_files(shard0_lines, tmp_path):
    import zstandard

    last = tmp_path / "no_newline.jsonl"
    last.write_bytes(b"".join(shard0_lines[:3]).rstrip(b"\n"))
    scan, docs, _ = read_all(last)
    assert scan.records == 3 and all(d.rejected_by is None for d in docs)
    for name, content in (("empty.jsonl", b""), ("empty.jsonl.zst", zstandard.ZstdCompressor().compress(b""))):
        (tmp_path / name).write_bytes(content)
        assert _scan(tmp_path / name)[1].records == 0
        assert _scan(tmp_path / name)[1].damage is None


# ---- pathological text and Kiwi errors (plain functions, real Kiwi) --------------------


class RecordingKiwi:
    """The real Kiwi, recording what it is asked and failing on chosen texts.

    Like Kiwi's batch `tokenize`, a failure stops the batch's generator; one-text calls
    fail alone.
    """

    def __init__(self, kiwi, fail_on: set[str] = frozenset(), num_workers: int = 1) -> None:
        self.kiwi = kiwi
        self.fail_on = set(fail_on)
        self.seen: list[str] = []
        self.num_workers = num_workers  # > 1: the pipeline analyses in batch

    def tokenize(self, texts, **kwargs):
        if isinstance(texts, str):
            self.seen.append(texts)
            if texts in self.fail_on:
                raise RuntimeError("kiwi failed on this text")
            return self.kiwi.tokenize(texts, **kwargs)
        return self._batch(list(texts), **kwargs)

    def _batch(self, texts, **kwargs):
        for text, tokens in zip(texts, self.kiwi.tokenize(texts, **kwargs), strict=True):
            self.seen.append(text)
            if text in self.fail_on:
                raise RuntimeError("kiwi failed on this text")
            yield tokens


def _documents(lines: list[bytes], source: str = "shard0"):
    from dask_prep.document import Document
    from dask_prep.io.reading import parse_line

    docs = []
    for number, raw in enumerate(lines, 1):
        text, doc_id, reason = parse_line(raw, "text", "id")
        docs.append(Document(doc_id=str(doc_id), text=text, source=source, line=number, rejected_by=reason))
    return docs


@pytest.fixture(scope="module")
def kiwi():
    from dask_prep.analysis.kiwi import get_kiwi

    return get_kiwi()


def test_every_preset_bounds_document_length():
    from dask_prep.config import PRESETS, preset

    for name in PRESETS:
        rule = preset(name).rules["too_long"]
        assert rule.enabled and rule.max is not None and rule.max <= 100_000, name


@pytest.mark.parametrize("preset_name", ["seed-v2", "fineweb2-ko"])
def test_too_long_text_never_reaches_kiwi(preset_name, kiwi, shard0_lines):
    from dask_prep.analysis.filters import FilterChain, kiwi_analyser
    from dask_prep.config import preset
    from dask_prep.document import Document

    config = preset(preset_name)
    config.rules.pop("length", None)  # seed-v2's length rule would reject it first, also before Kiwi
    # Whole documents, so Kiwi's texts are the candidates themselves (test_progressive_analysis.py
    # checks the same for progressive analysis).
    config.analysis.progressive = False
    # 100,001 characters without a space, Korean with sentence marks so that only the
    # length bound can stop it (Kiwi takes seconds on such a run).
    run_on = ("한국어문장이끝없이이어집니다." * 10_000)[:100_001]
    docs = [Document(doc_id="long", text=run_on, source="made", line=1)] + _documents(shard0_lines[:40])
    recorder = RecordingKiwi(kiwi)
    chain = FilterChain(config)
    list(chain.run(docs, kiwi_analyser(recorder)))

    assert docs[0].rejected_by == "too_long" and docs[0].metrics["too_long"] == 100_001
    assert run_on not in recorder.seen
    cheap = {f.name for f in chain.cheap}
    passed_cheap = [d.text for d in docs if d.rejected_by is None or d.rejected_by not in cheap]
    assert recorder.seen == passed_cheap  # Kiwi saw exactly the documents the cheap rules let through


@pytest.mark.parametrize("kiwi_threads", [1, 2], ids=["one-by-one", "batch"])
def test_kiwi_exception_rejects_one_document_and_the_partition_goes_on(kiwi, shard0, tmp_path, kiwi_threads):
    """A Kiwi failure on one document of a real partition: that one is `analysis_error`."""
    from dask_prep.config import preset
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs
    from dask_prep.output.layout import Layout
    from dask_prep.pipeline.partition import analyse_partition

    config = preset("seed-v2")
    config.input.dedup = False
    (file,) = resolve_inputs([str(shard0)])
    (spec,) = plan_partitions([file], [150], 150)

    clean_dir, faulty_dir = tmp_path / "clean", tmp_path / "faulty"
    clean = analyse_partition(spec, config, Layout(str(clean_dir)), kiwi=RecordingKiwi(kiwi, num_workers=kiwi_threads))
    kept_texts = _candidate_texts(clean_dir)
    assert len(kept_texts) >= 3
    victim_id, victim = sorted(kept_texts.items())[1]  # a document that is kept when Kiwi works

    faulty_kiwi = RecordingKiwi(kiwi, fail_on={victim}, num_workers=kiwi_threads)
    faulty = analyse_partition(spec, config, Layout(str(faulty_dir)), kiwi=faulty_kiwi)

    assert faulty.rejected["analysis_error"] == 1
    assert faulty.kept == clean.kept - 1
    assert faulty.read == faulty.kept + sum(faulty.rejected.values()) + sum(faulty.malformed.values())
    assert victim in faulty_kiwi.seen  # it did reach Kiwi, and the batch went on after it
    expected = {k: v for k, v in kept_texts.items() if k != victim_id}
    assert _candidate_texts(faulty_dir) == expected
    assert _candidates(faulty_dir) == {k: v for k, v in _candidates(clean_dir).items() if k != victim_id}
    docs, _ = read_partition(spec, "text", "id")
    faulty_decisions = decisions(faulty_dir)
    clean_decisions = decisions(clean_dir)
    for doc in docs:
        key = (doc.source, doc.line)
        want = "analysis_error" if doc.doc_id == victim_id else clean_decisions[key][1]
        assert faulty_decisions[key][1] == want, key


def _candidate_texts(output_dir: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    table = pq.read_table(Path(output_dir) / "_work" / "candidates", columns=["doc_id", "text"])
    return dict(zip(table["doc_id"].to_pylist(), table["text"].to_pylist(), strict=True))


def _candidates(output_dir: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    table = pq.read_table(Path(output_dir) / "_work" / "candidates", columns=["doc_id", "candidates"])
    return dict(zip(table["doc_id"].to_pylist(), table["candidates"].to_pylist(), strict=True))


# ---- bad input in a real run -----------------------------------------------------------

# Each bad kind of the issue, as bytes of one line, with the reason it must be counted under.
BAD_LINES: list[tuple[bytes, str]] = [
    (b"this is not json\n", "not_json"),
    (b'{"text": "cut off in the middle\n', "not_json"),
    (b"[1, 2, 3]\n", "not_object"),
    (b'"just a string"\n', "not_object"),
    (b'{"id": "no-text", "u": "https://example.org"}\n', "no_text"),
    (b'{"text": null}\n', "no_text"),
    (b'{"text": 42}\n', "no_text"),
    (b'{"text": "\xff\xfe not utf-8"}\n', "invalid_utf8"),
    (b'{"text": "a lone \\ud800 surrogate"}\n', "invalid_utf8"),  # valid JSON, but not encodable text
    (b'{"text": "nul\x00byte"}\n', "nul_bytes"),
    (b'{"text": "escaped \\u0000 nul"}\n', "nul_bytes"),
    (b'{"text": ""}\n', "empty_text"),
    (b'{"text": " \\n\\t  "}\n', "empty_text"),
    (b"\n", "blank_line"),
    (b"  \t \n", "blank_line"),
]


def _mix(good: list[bytes], bad: list[tuple[bytes, str]], every: int) -> tuple[bytes, dict[str, list[int]]]:
    """Good lines with the bad ones spread among them; {reason: 1-based line numbers}."""
    out, where = [], {}
    bad = list(bad)
    for index, line in enumerate(good):
        if index % every == 0 and bad:
            raw, reason = bad.pop(0)
            out.append(raw)
            where.setdefault(reason, []).append(len(out))
        out.append(line)
    for raw, reason in bad:
        out.append(raw)
        where.setdefault(reason, []).append(len(out))
    return b"".join(out), where


@pytest.fixture(scope="module")
def bad_input_runs(client, pipeline_runner, tokenizer_dir, shard0, shard0_lines, tmp_path_factory):
    """The same good documents run once mixed with every bad kind, and once alone."""
    import zstandard
    from support.runs import PipelineRun

    from dask_prep.pipeline.graph import Pipeline

    good = shard0_lines[:300]  # enough that the dataset's rows are many whatever the name rules give
    # A real line cut in the middle of a Hangul character: a realistic invalid_utf8.
    cut_line = good[0][: good[0].index("다".encode()) + 1] + b"\n"
    bad = BAD_LINES + [(cut_line, "invalid_utf8")]
    mixed, where = _mix(good, bad, every=13)

    shard1 = (shard0.parent / "00001.jsonl.zst").read_bytes()
    cut = shard1[: len(shard1) * 8 // 100]  # a download that stopped at 8 %
    readable = _lines(_decompress(cut))

    dirty = tmp_path_factory.mktemp("dirty_input")
    (dirty / "mixed.jsonl").write_bytes(mixed)
    (dirty / "empty.jsonl").write_bytes(b"")
    (dirty / "shard1.jsonl.zst").write_bytes(cut)
    clean = tmp_path_factory.mktemp("clean_input")
    (clean / "mixed.jsonl").write_bytes(b"".join(good))
    (clean / "shard1.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(readable)))

    config = seed_config_with(tokenizer_dir)
    dirty_run = pipeline_runner([dirty], config, tmp_path_factory.mktemp("dirty_run"))
    # The good documents alone are clean input: --strict lets them through.
    alone_dir = tmp_path_factory.mktemp("alone_run")
    with client.as_current():
        report = Pipeline([str(clean)], config, str(alone_dir)).run(strict=True)
    alone_run = PipelineRun(alone_dir, report, SEQ_LEN)
    return dirty_run, alone_run, where, len(good), len(readable)


def test_bad_input_is_counted_under_its_reason(bad_input_runs):
    run, _, where, n_good, n_readable = bad_input_runs
    report = run.report
    docs = report["documents"]
    assert docs["read"] == docs["malformed"] + docs["rejected"] + docs["kept"]
    n_bad = sum(len(lines) for lines in where.values())
    assert docs["read"] == n_good + n_bad + n_readable
    assert report["malformed"] == {reason: len(lines) for reason, lines in where.items()}
    assert report["malformed_locations"] == {
        reason: [f"mixed.jsonl:{line}" for line in lines] for reason, lines in where.items()
    }
    by_line = decisions(run.output_dir)
    for reason, lines in where.items():
        for line in lines:
            assert by_line[("mixed.jsonl", line)][1] == reason, (line, reason)


def test_empty_and_damaged_files_are_reported(bad_input_runs):
    run, _, _, _, n_readable = bad_input_runs
    report = run.report
    assert report["empty_files"] == ["empty.jsonl"]
    assert list(report["damaged_files"]) == ["shard1.jsonl.zst"]
    assert "truncated" in report["damaged_files"]["shard1.jsonl.zst"]
    # Every line before the cut was read and judged like any other document.
    lines = sorted(line for source, line in decisions(run.output_dir) if source == "shard1.jsonl.zst")
    assert lines == list(range(1, n_readable + 1))


def test_good_documents_give_exactly_the_examples_they_give_alone(bad_input_runs):
    from dask_prep.io.reading import MALFORMED_REASONS

    dirty, alone, _, _, _ = bad_input_runs
    dirty_decisions = {
        doc_id: reason for doc_id, reason in decisions(dirty.output_dir).values() if reason not in MALFORMED_REASONS
    }
    alone_decisions = dict(decisions(alone.output_dir).values())
    assert dirty_decisions == alone_decisions
    assert sum(reason is None for reason in alone_decisions.values()) >= 5
    rows = dataset_rows(dirty.output_dir)
    assert len(rows) > 50
    assert rows == dataset_rows(alone.output_dir)
    assert dirty.report["rejected"] == alone.report["rejected"]
    assert dirty.report["examples"] == alone.report["examples"]


# ---- --strict --------------------------------------------------------------------------


def test_check_strict_names_every_kind():
    from dask_prep.io.reading import BadInputError, check_strict
    from dask_prep.stats import AnalysisStats

    check_strict({}, [], [AnalysisStats(malformed={}, malformed_locations={}, damaged={})])  # clean: no error
    stats = [
        AnalysisStats(
            malformed={"not_json": 2}, malformed_locations={"not_json": ["a.jsonl:3", "a.jsonl:9"]}, damaged={}
        ),
        AnalysisStats(malformed={"no_text": 1}, malformed_locations={"no_text": ["b.jsonl:1"]}, damaged={}),
    ]
    with pytest.raises(BadInputError) as caught:
        check_strict({"c.jsonl.zst": "TruncatedError: cut"}, ["d.jsonl"], stats)
    message = str(caught.value)
    assert "\n" not in message
    for part in ("c.jsonl.zst", "d.jsonl", "not_json 2", "a.jsonl:3", "no_text 1", "without --strict"):
        assert part in message
    with pytest.raises(BadInputError, match="1 damaged file"):
        check_strict({"x.jsonl.zst": "TruncatedError: cut"}, [])
    with pytest.raises(BadInputError, match="1 empty file"):
        check_strict({}, ["x.jsonl"])


def test_strict_stops_at_a_damaged_or_empty_file_before_kiwi(client, tokenizer_dir, shard0, shard0_lines, tmp_path):
    from dask_prep.io.reading import BadInputError
    from dask_prep.pipeline.graph import Pipeline

    cut = shard0.read_bytes()[:100_000]
    cases = {"damaged": ("cut.jsonl.zst", cut), "empty": ("empty.jsonl", b"")}
    for case, (name, content) in cases.items():
        inputs = tmp_path / f"{case}_in"
        inputs.mkdir()
        (inputs / "good.jsonl").write_bytes(b"".join(shard0_lines[:20]))
        (inputs / name).write_bytes(content)
        out = tmp_path / f"{case}_out"
        with client.as_current(), pytest.raises(BadInputError, match=name.replace(".", r"\.")):
            Pipeline([str(inputs)], seed_config_with(tokenizer_dir), str(out)).run(strict=True)
        assert not (out / "_work" / "stats").exists()  # no partition was analysed


def test_strict_cli_fails_on_malformed_lines(client, tokenizer_dir, shard0_lines, tmp_path, capfd):
    """Through the CLI's `main` (on the session cluster via --scheduler): exit 2 and one line.

    (Clean input passes --strict: the `bad_input_runs` fixture runs the good documents so.)
    """
    from dask_prep.cli.main import main

    dirty, where = _mix(shard0_lines[:30], BAD_LINES[:3], every=10)
    (tmp_path / "dirty.jsonl").write_bytes(dirty)
    common = ["--model", str(tokenizer_dir), "--scheduler", client.scheduler.address, "--quiet", "--strict"]

    code = main(["run", str(tmp_path / "dirty.jsonl"), "--output-dir", str(tmp_path / "dirty_out"), *common])
    stderr = capfd.readouterr().err
    assert code == 2, stderr
    line = _traceback_free_one_liner(stderr)
    assert "--strict" in line and "not_json 2" in line and "not_object 1" in line
    assert f"dirty.jsonl:{where['not_json'][0]}" in line
    assert not (tmp_path / "dirty_out" / f"entity_coref_v2_{SEQ_LEN}").exists()
    assert not (tmp_path / "dirty_out" / "_work" / "stats" / "tokenize-00000.json").exists()  # stopped after stage 1


# ---- a worker killed mid-run -----------------------------------------------------------


def test_killed_worker_gives_the_same_dataset(client, reference, tokenizer_dir, shard0, tmp_path):
    """SIGKILL a session worker process while it analyses a partition; its nanny restarts it."""
    from dask_prep.pipeline.graph import Pipeline

    config = seed_config_with(tokenizer_dir, input__max_samples=SAMPLES, input__dedup=False, input__partition_size=20)
    out = tmp_path / "killed"
    stats_dir = out / "_work" / "stats"
    pids = client.run(os.getpid)
    result: dict = {}

    def work() -> None:
        try:
            with client.as_current():
                result["report"] = Pipeline([str(shard0)], config, str(out)).run()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    victim, unfinished, done_before = None, [], set()
    while thread.is_alive() and victim is None:
        time.sleep(0.05)
        if not _finished(stats_dir):
            continue  # partitions are not running yet
        busy = [a for a, keys in client.processing().items() if any("_analyse" in str(k) for k in keys)]
        if not busy:
            continue
        # Freeze the worker, then see which of its partitions are surely unfinished (no
        # stats file, which is written last); kill it only if there are some.
        os.kill(pids[busy[0]], signal.SIGSTOP)
        try:
            done_before = _finished(stats_dir)
            keys = client.processing().get(busy[0], [])
            unfinished = [_index(k) for k in keys if "_analyse" in str(k) and _index(k) not in done_before]
        finally:
            os.kill(pids[busy[0]], signal.SIGKILL if unfinished else signal.SIGCONT)
        if unfinished:
            victim = busy[0]
    thread.join(timeout=900)
    # The session cluster must have its two workers again for the tests that follow.
    client.wait_for_workers(2, timeout=300)
    assert victim is not None, "the run ended before a worker could be killed"
    assert not thread.is_alive(), "the run did not finish after the kill"
    assert "error" not in result, result.get("error")
    pids_after = client.run(os.getpid)

    report = result["report"]
    total = report["partitions"]["total"]
    assert len(done_before) < total  # it was killed mid-run
    assert pids[victim] not in pids_after.values()  # that process is gone; the nanny started another
    assert len(pids_after) == 2
    # Dask ran the partitions the killed worker was busy with on another worker.
    log = {entry["partition"]: entry for entry in report["partition_log"]}
    assert sorted(log) == list(range(total))
    for index in unfinished:
        assert log[index]["analysed_by"] not in (None, victim), log[index]
    assert report["documents"] == reference.report["documents"]
    rows = dataset_rows(out)
    assert len(set(rows)) == len(rows)  # no duplicated row
    assert rows == dataset_rows(reference.output_dir)  # no lost row either, and the same order


# ---- an interrupted run, resumed -------------------------------------------------------


def test_interrupted_run_resumes_to_the_same_dataset(reference, tokenizer_dir, shard0, tmp_path, capfd):
    """SIGINT to `dask-prep run` mid-way, then the same command with --resume."""
    out = tmp_path / "interrupted"
    stats_dir = out / "_work" / "stats"
    args = [str(shard0), "--output-dir", str(out), "--model", str(tokenizer_dir), "--n-workers", "2"]
    args += ["--max-samples", str(SAMPLES), "--partition-size", "20", "--no-dedup", "--quiet"]

    interrupt_after(cli(*args), lambda: _finished(stats_dir))
    finished = _finished(stats_dir)  # after the exit: what the workers finished until they stopped
    assert finished
    assert not (out / f"entity_coref_v2_{SEQ_LEN}").exists()  # no half dataset
    assert not (out / "report.json").exists()

    # Resuming with another config is refused, and nothing is touched.
    from dask_prep.cli.main import main

    assert main(["run", *args, "--resume", "--seq-len", "512"]) == 2
    line = _traceback_free_one_liner(capfd.readouterr().err)
    assert "config changed" in line and "seq_len" in line
    assert _finished(stats_dir) == finished

    # Resumed on a cluster of another size: the partitions are those of the first run.
    args[args.index("--n-workers") + 1] = "1"
    proc = cli(*args, "--resume")
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    partitions = report["partitions"]
    assert partitions["total"] > len(finished)
    assert partitions["analysis_reused"] == len(finished)
    assert partitions["analysed"] + partitions["analysis_reused"] == partitions["total"]
    reused = {e["partition"] for e in report["partition_log"] if e["analysis_reused"]}
    assert reused == finished  # every finished partition reused, none computed twice
    assert sorted(e["partition"] for e in report["partition_log"]) == list(range(partitions["total"]))
    assert report["documents"] == reference.report["documents"]
    assert dataset_rows(out) == dataset_rows(reference.output_dir)


# ---- the dataset directory appears only when complete ----------------------------------


def test_dataset_is_written_to_a_temporary_directory_then_renamed(reference, tmp_path, monkeypatch):
    import shutil

    import datasets

    from dask_prep.output.layout import Layout
    from dask_prep.output.publish import write_dataset

    layout = Layout(str(tmp_path / "out"))
    shutil.copytree(reference.output_dir / "_work" / "examples", Path(layout.work) / "examples")
    parts = sorted(int(p.stem.split("-")[1]) for p in (Path(layout.work) / "examples").glob("part-*.parquet"))
    final = Path(layout.root) / f"entity_coref_v2_{SEQ_LEN}"
    original = datasets.Dataset.save_to_disk
    written_to: list[str] = []

    def save_then_fail(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)  # the whole dataset lands on disk ...
        written_to.append(str(path))
        raise OSError("no space left on device")  # ... but the rename never happens

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_then_fail)
    with pytest.raises(OSError, match="no space"):
        write_dataset(layout, parts, SEQ_LEN)
    assert not final.exists()
    assert written_to and Path(written_to[0]) != final and written_to[0].endswith(".tmp")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", original)
    assert write_dataset(layout, parts, SEQ_LEN) == str(final)
    assert dataset_rows(Path(layout.root)) == dataset_rows(reference.output_dir)
    assert not Path(written_to[0]).exists()  # nothing left half-written beside it

    # A failed rewrite (e.g. --overwrite) leaves the earlier complete dataset as it was.
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_then_fail)
    with pytest.raises(OSError):
        write_dataset(layout, parts, SEQ_LEN)
    assert dataset_rows(Path(layout.root)) == dataset_rows(reference.output_dir)
