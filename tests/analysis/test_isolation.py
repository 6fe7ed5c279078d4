"""Issue 24: a document whose Kiwi analysis kills or hangs its process costs that document only.

Unit tests run the isolated analyser and the attempt markers in this process. The
integration tests start real `dask scheduler` / `dask worker` processes (and a LocalCluster
through the CLI) whose Kiwi aborts on one document and hangs on another, by a worker
`--preload` in tests/support/ (kiwi_fault_preload.py) that the package knows nothing about; the
run must finish with those two documents rejected and the dataset of a run without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.data import needs_shared, seed_config_with
from support.processes import console_script, signal_group, wait_for

REPO = Path(__file__).resolve().parents[2]
PRELOAD = Path(__file__).resolve().parents[1] / "support" / "kiwi_fault_preload.py"
SEQ_LEN = 2048
LINES = 240  # documents of shard 00000 in the corpus (~60 reach Kiwi)
TIMEOUT = 5  # --analysis-timeout of the runs (seconds)


# ---- unit: the isolated analyser, markers, the filter chain ----------------------------------


@pytest.fixture(scope="module")
def warm_kiwi():
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=1)
    kiwi.tokenize("키위를 미리 깨운다.")
    return kiwi


class _FaultyKiwi:
    """A real Kiwi that aborts the process on "BOOM" and never returns on "HANG"."""

    def __init__(self, kiwi, num_workers: int = 1) -> None:
        self.kiwi = kiwi
        self.num_workers = num_workers

    def tokenize(self, text):
        if "BOOM" in text:
            os.abort()
        if "HANG" in text:
            time.sleep(3600)
        if "RAISE" in text:
            raise ValueError("Kiwi refused this one")
        return self.kiwi.tokenize(text)


def test_isolated_analyser_names_the_document_that_crashed_or_hung(warm_kiwi):
    from dask_prep.analysis.isolation import AnalysisFailed, KiwiToken, isolated_analyser

    texts = ["서울은 한국의 수도이다.", "BOOM 부산", "대전은 도시다.", "HANG 광주", "RAISE", "마지막 문장이다."]
    started = time.monotonic()
    out = list(isolated_analyser(_FaultyKiwi(warm_kiwi), 1.0)(texts))
    assert time.monotonic() - started < 60
    assert len(out) == len(texts)
    for i in (0, 2, 5):
        expected = [KiwiToken(t.form, t.tag, t.start, t.len) for t in warm_kiwi.tokenize(texts[i])]
        assert out[i] == expected
    assert isinstance(out[1], AnalysisFailed) and out[1].rejection == "analysis_crash"
    assert "SIGABRT" in str(out[1])
    assert isinstance(out[3], AnalysisFailed) and out[3].rejection == "analysis_timeout"
    assert isinstance(out[4], Exception) and not isinstance(out[4], AnalysisFailed)


def test_isolated_analyser_builds_its_own_kiwi_for_a_threaded_one(warm_kiwi, monkeypatch):
    """A Kiwi with a thread pool does not survive a fork: the child builds a one-thread Kiwi."""
    from dask_prep.analysis import kiwi as kiwi_setup
    from dask_prep.analysis.isolation import isolated_analyser

    built = []  # in the child, which builds (here: gets) a Kiwi of one thread; the parent never
    monkeypatch.setattr(kiwi_setup, "_new_kiwi", lambda threads, model: built.append(1) or _FaultyKiwi(warm_kiwi))
    texts = ["서울은 한국의 수도이다.", "BOOM", "부산은 항구 도시다."]
    out = list(isolated_analyser(_FaultyKiwi(warm_kiwi, num_workers=2), 30.0)(texts))
    assert [t.form for t in out[0]] == [t.form for t in warm_kiwi.tokenize(texts[0])]
    assert out[1].rejection == "analysis_crash"
    assert [t.form for t in out[2]] == [t.form for t in warm_kiwi.tokenize(texts[2])]
    assert not built


def test_attempt_marker_is_left_only_by_a_dead_attempt(tmp_path):
    """Python errors remove the marker; a process that dies leaves it for the next attempt."""
    from dask_prep.analysis.isolation import attempt, clear_attempts

    with attempt(str(tmp_path), "analyse", 3) as died_before:
        assert not died_before
    with pytest.raises(RuntimeError), attempt(str(tmp_path), "analyse", 3) as died_before:
        raise RuntimeError("a Python error is not a crash")
    with attempt(str(tmp_path), "analyse", 3) as died_before:
        assert not died_before

    # A process that dies inside leaves the marker: the next attempt knows.
    pid = os.fork()
    if pid == 0:
        with attempt(str(tmp_path), "analyse", 4):
            os._exit(1)  # no finally runs, as with abort() or SIGKILL
    os.waitpid(pid, 0)
    with attempt(str(tmp_path), "analyse", 4) as died_before:
        assert died_before
    # ... and so does every later attempt of the run (a result lost with a worker is recomputed).
    with attempt(str(tmp_path), "analyse", 4) as died_before:
        assert died_before
    with attempt(str(tmp_path), "analyse", 3) as died_before:
        assert not died_before
    pid = os.fork()
    if pid == 0:
        with attempt(str(tmp_path), "analyse", 5):
            os._exit(1)
    os.waitpid(pid, 0)
    clear_attempts(str(tmp_path))  # a new run (or --resume) starts afresh
    with attempt(str(tmp_path), "analyse", 5) as died_before:
        assert not died_before


def test_a_store_error_leaves_the_marker_without_asking_the_store_again(tmp_path, monkeypatch):
    """The store failed the partition: its removal would wait on that store again (issue 32)."""
    botocore = pytest.importorskip("botocore.exceptions", reason="botocore is not installed (pip install -e '.[test]')")
    from dask_prep.analysis import isolation

    removed: list[str] = []
    monkeypatch.setattr(isolation.storage, "remove", removed.append)
    with pytest.raises(botocore.ReadTimeoutError), isolation.attempt(str(tmp_path), "analyse", 6):
        raise botocore.ReadTimeoutError(endpoint_url="http://store")
    assert removed == []
    with pytest.raises(RuntimeError), isolation.attempt(str(tmp_path), "analyse", 7):
        raise RuntimeError("a Python error")
    assert [os.path.basename(p) for p in removed] == ["analyse-00007"]


def test_filter_chain_rejects_a_failed_analysis_with_its_reason(tokenizer_dir):
    from dask_prep.analysis.filters import FilterChain
    from dask_prep.analysis.isolation import AnalysisFailed
    from dask_prep.document import Document

    config = seed_config_with(tokenizer_dir)
    config.rules = {name: rule for name, rule in config.rules.items() if name == "no_repeated_entity"}
    docs = [Document(doc_id=str(i), text="텍스트", source="f", line=i) for i in range(3)]
    answers = [AnalysisFailed("analysis_crash", "died"), AnalysisFailed("analysis_timeout", "hung"), ValueError()]
    assert list(FilterChain(config).run(docs, lambda texts: iter(answers))) == []
    assert [d.rejected_by for d in docs] == ["analysis_crash", "analysis_timeout", "analysis_error"]


# ---- integration: real processes whose Kiwi aborts or hangs ---------------------------------


@pytest.fixture(scope="module")
def faulty_corpus(shard0, tmp_path_factory):
    """(corpus with a crashing and a hanging document, the same corpus without them, markers).

    The two documents are ones that reach Kiwi (they pass the cheap rules); each marker is
    the start of its document's text, found in no other document.
    """
    import zstandard

    from dask_prep.analysis.filters import FilterChain
    from dask_prep.analysis.progressive import next_chunk_end
    from dask_prep.config import preset
    from dask_prep.io.reading import parse_line

    data = zstandard.ZstdDecompressor().decompressobj().decompress(shard0.read_bytes())
    lines = [line + b"\n" for line in data.split(b"\n")[:LINES]]
    chain = FilterChain(preset("seed-v2"))
    texts = [parse_line(line, "text", "id")[0] for line in lines]
    reach_kiwi = []
    for i, text in enumerate(texts):
        from dask_prep.document import Document

        doc = Document(doc_id=str(i), text=text, source="x", line=i + 1)
        if text is not None and chain._apply(chain.cheap, doc):
            reach_kiwi.append(i)
    # The marker is the document's first 40 characters, within the first piece progressive
    # analysis gives Kiwi: Kiwi sees it in any mode (a chunk may reject a document early).
    hints = [getattr(rule, "hint", None) for rule in chain.early]
    reach_kiwi = [i for i in reach_kiwi if (next_chunk_end(texts[i], 0, hints) or len(texts[i])) >= 40]
    assert len(reach_kiwi) > 20
    crash, hang = reach_kiwi[3], reach_kiwi[len(reach_kiwi) // 2]
    markers = {}
    for name, i in (("crash", crash), ("hang", hang)):
        marker = texts[i][:40]
        assert sum(marker in t for t in texts if t) == 1
        markers[name] = (marker, i + 1)
    folder = tmp_path_factory.mktemp("faulty_corpus")
    (folder / "with").mkdir()
    (folder / "without").mkdir()
    (folder / "with" / "docs.jsonl").write_bytes(b"".join(lines))
    kept = [line for i, line in enumerate(lines) if i not in (crash, hang)]
    (folder / "without" / "docs.jsonl").write_bytes(b"".join(kept))
    return folder / "with" / "docs.jsonl", folder / "without" / "docs.jsonl", markers


def _rows(output_dir: Path) -> list[tuple]:
    import datasets

    dataset = datasets.load_from_disk(str(Path(output_dir) / f"entity_coref_v2_{SEQ_LEN}"))
    return [
        (row["doc_id"], row["coref_pos"], hashlib.sha1(json.dumps(row, sort_keys=True).encode()).hexdigest())
        for row in dataset
    ]


@pytest.fixture(scope="module")
def reference_without(faulty_corpus, pipeline_runner, tokenizer_dir, tmp_path_factory):
    _, without, _ = faulty_corpus
    config = seed_config_with(tokenizer_dir, input__partition_size=20)
    run = pipeline_runner([without], config, tmp_path_factory.mktemp("reference_without"))
    assert run.report["examples"]["written"] > 20
    return run


def _env(markers: dict, **extra: str) -> dict:
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1", **extra}
    env["DASK_PREP_TEST_CRASH_MARKER"] = markers["crash"][0]
    env["DASK_PREP_TEST_HANG_MARKER"] = markers["hang"][0]
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


def _run_args(corpus: Path, output: Path, tokenizer_dir: Path, *more: str) -> list[str]:
    return [
        sys.executable, "-m", "dask_prep", "run", str(corpus), "--output-dir", str(output),
        "--model", str(tokenizer_dir), "--partition-size", "20", "--analysis-timeout", str(TIMEOUT),
        "--quiet", *more,
    ]  # fmt: skip


def _check_faulty_run(output: Path, proc: subprocess.CompletedProcess, reference, markers: dict) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    crash_line, hang_line = markers["crash"][1], markers["hang"][1]
    assert report["rejected"].get("analysis_crash") == 1, report["rejected"]
    assert report["rejected"].get("analysis_timeout") == 1, report["rejected"]
    assert report["analysis_failures"] == {
        "analysis_crash": [f"docs.jsonl:{crash_line}"],
        "analysis_timeout": [f"docs.jsonl:{hang_line}"],
    }
    assert report["partitions"]["isolated"] >= 2
    docs, ref = report["documents"], reference.report["documents"]
    assert docs["read"] == ref["read"] + 2 == LINES
    assert docs["rejected"] == ref["rejected"] + 2 and docs["kept"] == ref["kept"]
    assert docs["read"] == docs["malformed"] + sum(report["rejected"].values()) + docs["kept"]
    import pyarrow.parquet as pq

    decisions = pq.read_table(output / "decisions", columns=["line", "rejected_by"]).to_pylist()
    by_line = {row["line"]: row["rejected_by"] for row in decisions}
    assert len(by_line) == LINES
    assert by_line[crash_line] == "analysis_crash" and by_line[hang_line] == "analysis_timeout"
    assert _rows(output) == _rows(reference.output_dir)
    assert f"analysis_crash: 1 document(s) rejected (docs.jsonl:{crash_line})" in proc.stdout


@pytest.mark.cluster
@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("workers, kiwi_threads", [(1, 2), (2, 1)])
def test_local_cluster_run_survives_a_crashing_and_a_hanging_document(
    workers, kiwi_threads, faulty_corpus, reference_without, tokenizer_dir, tmp_path
):
    """The CLI's LocalCluster: one worker whose Kiwi has two threads (batch analysis), or two
    single-threaded ones forked from a warm Kiwi (one document at a time)."""
    corpus, _, markers = faulty_corpus
    output = tmp_path / "local"
    env = _env(markers, DASK_DISTRIBUTED__WORKER__PRELOAD=json.dumps([str(PRELOAD)]))
    args = _run_args(corpus, output, tokenizer_dir, "--n-workers", str(workers), "--kiwi-threads", str(kiwi_threads))
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    _check_faulty_run(output, proc, reference_without, markers)


@pytest.mark.cluster
@pytest.mark.slow
@needs_shared
def test_dask_cli_workers_survive_a_crashing_and_a_hanging_document(
    faulty_corpus, reference_without, tokenizer_dir, tmp_path
):
    """`dask scheduler` with no retries allowed, two `dask worker`s with the preload, --kiwi-threads 1."""
    from distributed import Client

    corpus, _, markers = faulty_corpus
    # Dask's retry count does not decide: with none allowed, the first death is a KilledWorker.
    env = _env(markers, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    started = []
    try:
        scheduler_file = tmp_path / "scheduler.json"
        scheduler_args = [console_script("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0"]
        scheduler_args += ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]
        logs = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed below
        started.append(
            subprocess.Popen(scheduler_args, stdout=logs, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        )
        wait_for(scheduler_file.exists, 90, "the scheduler file", started)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for name in ("w1", "w2"):
            worker_args = [console_script("dask"), "worker", address, "--nworkers", "1", "--nthreads", "1"]
            worker_args += ["--host", "127.0.0.1", "--name", name, "--no-dashboard", "--memory-limit", "2GiB"]
            worker_args += ["--local-directory", str(tmp_path / name), "--death-timeout", "60"]
            worker_args += ["--preload", str(PRELOAD)]
            started.append(
                subprocess.Popen(worker_args, stdout=logs, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
        with Client(address, timeout="60s", set_as_default=False) as monitor:
            monitor.wait_for_workers(2, timeout=120)
        output = tmp_path / "distributed"
        args = _run_args(corpus, output, tokenizer_dir, "--scheduler", address, "--kiwi-threads", "1")
        proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        _check_faulty_run(output, proc, reference_without, markers)
    finally:
        for proc in reversed(started):
            signal_group(proc, 15)
        for proc in reversed(started):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                signal_group(proc, 9)
                proc.wait(timeout=10)
        logs.close()
