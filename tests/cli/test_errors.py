"""Issue 5: errors a person can act on, and an output directory that is never clobbered.

Every case must print one line on stderr, exit 2 and show no traceback. A few cases run
`python -m dask_prep run ...` in a process of their own, exactly as a user would; the
rest call the CLI's `main()` in the test process with stderr captured at the file
descriptor, and fail if anything logs a warning (which a user would see as more lines).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.processes import closed_port

pytestmark = pytest.mark.cluster  # `dask-prep` processes, and runs on the session cluster

REPO = Path(__file__).resolve().parents[2]


def _case_table(tmp: Path, shard0: Path, tokenizer: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (arguments of `dask-prep run`, extra environment)."""
    configs = {
        "bad_yaml": "rules: [\n",
        "unknown_rule": "rules:\n  nosuch: {max: 3}\n",
        "wrong_type": "entities:\n  min_chars: two\n",
        "unknown_section": "filters:\n  length: {max: 3}\n",
    }
    for name, text in configs.items():
        (tmp / f"{name}.yaml").write_text(text, encoding="utf-8")
    (tmp / "empty_tokenizer").mkdir()
    full = tmp / "full_output"
    (full / "sub").mkdir(parents=True)
    (full / "keep.txt").write_text("earlier results", encoding="utf-8")
    (full / "sub" / "data.bin").write_bytes(b"\x00\x01")

    def out(name: str) -> list[str]:
        return ["--output-dir", str(tmp / f"out_{name}")]

    good = [str(shard0), "--model", str(tokenizer)]
    cases = {
        "missing_input": ([str(tmp / "missing.jsonl"), "--model", str(tokenizer), *out("missing")], {}),
        "empty_glob": ([str(tmp / "nothing-*.jsonl"), "--model", str(tokenizer), *out("glob")], {}),
        "tokenizer_no_dir": ([str(shard0), "--model", str(tmp / "no-such-tokenizer"), *out("tok1")], {}),
        "tokenizer_no_files": ([str(shard0), "--model", str(tmp / "empty_tokenizer"), *out("tok2")], {}),
        # Offline, with an empty cache: a hub name cannot be loaded.
        "tokenizer_offline_hub": (
            [str(shard0), "--model", "kakaobank/kf-deberta-base", *out("tok3")],
            {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home")},
        ),
        "scheduler": ([*good, "--scheduler", f"tcp://127.0.0.1:{closed_port()}", *out("sched")], {}),
        "config_missing": ([*good, "--config", str(tmp / "missing.yaml"), *out("c0")], {}),
        "output_not_empty": ([*good, "--output-dir", str(full)], {}),
        "resume_without_manifest": ([*good, "--output-dir", str(full), "--resume"], {}),
        "verbose": ([str(tmp / "missing.jsonl"), "--model", str(tokenizer), *out("verbose")], {}),
    }
    for name in configs:
        cases[f"config_{name}"] = ([*good, "--config", str(tmp / f"{name}.yaml"), *out(name)], {})
    return cases


# Run as a user would, in a process of their own: the console entry point, --verbose, and
# the cases whose libraries read the environment at import (HF_HUB_OFFLINE) or log while
# failing (distributed's connection attempts).
IN_SUBPROCESS = ("missing_input", "verbose", "tokenizer_offline_hub", "scheduler")


@pytest.fixture(scope="module")
def cases(shard0, tokenizer_dir, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("errors")
    return tmp, _case_table(tmp, shard0, tokenizer_dir)


@pytest.fixture(scope="module")
def subprocess_outcomes(cases) -> dict[str, subprocess.CompletedProcess]:
    """The subprocess cases, a few at a time (each is mostly Python imports)."""
    _, table = cases

    def run(name: str) -> subprocess.CompletedProcess:
        args, env = table[name]
        before = ["--verbose"] if name == "verbose" else []
        return subprocess.run(
            [sys.executable, "-m", "dask_prep", *before, "run", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **env},
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(IN_SUBPROCESS, pool.map(run, IN_SUBPROCESS), strict=True))


def _outcome(name: str, cases, subprocess_outcomes, capfd, caplog) -> tuple[int, str, str]:
    """(exit code, stdout, stderr); in-process cases must log no warning either."""
    if name in IN_SUBPROCESS:
        proc = subprocess_outcomes[name]
        return proc.returncode, proc.stdout, proc.stderr
    from dask_prep.cli.main import main

    args, env = cases[1][name]
    assert not env
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        code = main(["run", *args])
    out, err = capfd.readouterr()
    logged = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert not logged, logged  # would be more lines on a user's stderr
    return code, out, err


# name -> what the one line must say: the problem and the way out.
EXPECTED = {
    "missing_input": ["missing.jsonl", "does not exist", "check the path"],
    "empty_glob": ["nothing-*.jsonl", "matches no file", "check the pattern"],
    "tokenizer_no_dir": ["no-such-tokenizer", "no such directory", "Pass a directory"],
    "tokenizer_no_files": ["empty_tokenizer", "cannot load tokenizer", "local directory", "offline"],
    "tokenizer_offline_hub": [
        "kakaobank/kf-deberta-base",
        "cannot load tokenizer",
        "local directory",
        "HF_HUB_OFFLINE",
    ],
    "scheduler": ["cannot reach the Dask scheduler", "tcp://127.0.0.1:", "omit --scheduler"],
    "config_missing": ["missing.yaml", "cannot read config file"],
    "config_bad_yaml": ["bad_yaml.yaml", "not valid YAML", "line 2"],
    "config_unknown_rule": ["unknown rule 'nosuch'", "known:", "too_long"],
    "config_wrong_type": ["entities.min_chars", "must be a number", "'two'"],
    "config_unknown_section": ["unknown config section", "filters"],
    "output_not_empty": ["full_output", "not empty", "--overwrite", "nothing was deleted"],
    "resume_without_manifest": ["cannot resume", "manifest.json", "without --resume"],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_one_line_naming_the_problem_and_the_fix(name, cases, subprocess_outcomes, capfd, caplog):
    code, out, err = _outcome(name, cases, subprocess_outcomes, capfd, caplog)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # nothing else on stderr: no warnings, no log lines
    assert lines[0].startswith("dask-prep: error: ")
    for part in EXPECTED[name]:
        assert part in lines[0], (part, lines[0])
    assert out == ""


def test_verbose_shows_the_traceback(subprocess_outcomes):
    proc = subprocess_outcomes["verbose"]
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "InputError" in proc.stderr


def test_no_output_is_created_or_deleted_on_errors(cases, subprocess_outcomes, capfd, caplog):
    tmp, _ = cases
    for name in EXPECTED:  # in-process cases are cheap: run them all here, whatever ran before
        _outcome(name, cases, subprocess_outcomes, capfd, caplog)
    full = tmp / "full_output"
    assert sorted(p.relative_to(full).as_posix() for p in full.rglob("*")) == ["keep.txt", "sub", "sub/data.bin"]
    assert (full / "keep.txt").read_text(encoding="utf-8") == "earlier results"
    assert (full / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    # Errors found before any work leave no output directory behind.
    assert not any(tmp.glob("out_*"))


# A process that holds an output directory as a running `dask-prep run` does, until told to end.
HOLDER = """
import sys
from dask_prep.output.layout import hold_output_dir
with hold_output_dir(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _hold(directory: Path) -> subprocess.Popen:
    args = [sys.executable, "-c", HOLDER, str(directory)]
    holder = subprocess.Popen(args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_into_a_directory_in_use_fails_at_once(shard0, tokenizer_dir, tmp_path, capfd):
    from dask_prep.cli.main import main
    from dask_prep.output.layout import LOCK_FILE, check_not_in_use, check_output_dir, prepare_output_dir

    busy = tmp_path / "busy"
    holder = _hold(busy)
    try:
        (busy / "earlier.txt").write_text("the other run's work", encoding="utf-8")
        capfd.readouterr()
        code = main(["run", str(shard0), "--model", str(tokenizer_dir), "--output-dir", str(busy), "--overwrite"])
        out, err = capfd.readouterr()
        assert code == 2, err
        assert err.strip().splitlines() == [err.strip()], err
        for part in ["in use by another dask-prep run", f"pid {holder.pid}", "another --output-dir", "nothing was"]:
            assert part in err, (part, err)
        assert (busy / "earlier.txt").read_text(encoding="utf-8") == "the other run's work"
    finally:
        holder.kill()  # not a clean exit: the kernel still releases the lock
        holder.wait()
    check_not_in_use(str(busy))
    assert sorted(p.name for p in busy.iterdir()) == [LOCK_FILE, "earlier.txt"]
    prepare_output_dir(str(busy), overwrite=True)  # as a run with --overwrite does, holding the lock
    assert [p.name for p in busy.iterdir()] == [LOCK_FILE]
    assert not check_output_dir(str(busy)), "a directory holding only the lock file is empty"


def test_a_run_holds_its_output_directory_until_its_report_is_written(client, shard0, tokenizer_dir, tmp_path):
    from support.data import seed_config_with

    from dask_prep.output.layout import OutputDirError, check_not_in_use, hold_output_dir
    from dask_prep.pipeline.graph import Pipeline
    from dask_prep.pipeline.progress import Progress

    config = seed_config_with(tokenizer_dir, input__max_samples=300)
    out = tmp_path / "out"
    probes: dict[str, str] = {}

    class ProbeAtEachStage(Progress):
        def start(self, stage: str, partitions: int) -> None:
            try:
                check_not_in_use(str(out))
                probes[stage] = "free"
            except OutputDirError as exc:
                probes[stage] = str(exc)

    with client.as_current():
        report = Pipeline([str(shard0)], config, str(out)).run(progress=ProbeAtEachStage())
    assert set(probes) == {"analyse", "tokenize", "sort", "publish"}  # publication too (issue 30)
    assert all(f"pid {os.getpid()}" in message for message in probes.values()), probes
    assert (out / "report.json").exists() and report["documents"]["read"] == 300
    check_not_in_use(str(out))  # released once the run returned
    with hold_output_dir(str(out)), pytest.raises(OutputDirError, match="in use"):
        Pipeline([str(shard0)], config, str(out)).run(overwrite=True)
