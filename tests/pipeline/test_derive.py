"""Issue 34: `derive` gives, row for row, the dataset a full run with the same final config gives.

One analysing run per corpus (the repo's sample; the first 1,000 documents of shared shard
00000), then for each derived config a full run and a derive of the first run, both on the
session cluster, compared whole (every column, saved order). The CLI refuses, in one line
with exit 2, a change that needs Kiwi again and a run directory without a finished analysis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster  # the CLI tests start `dask-prep` processes

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample" / "ko_sample.jsonl"
SAMPLE_TOKENIZER = REPO / "sample" / "tokenizer"

# The derived configs: another seq-len, another tokenizer, another cap, another distance.
CHANGES = {
    "seq_len": {"tokenize": {"seq_len": 256}},
    "tokenizer": {"tokenize": {"model": "SHARED_TOKENIZER"}},
    "max_entity_freq": {"entities": {"max_entity_freq": 3}},
    "max_distance": {"entities": {"max_distance": 400}},
    # The corpus-level proper-noun share (issue 33), reduced from derive's own stats.
    "min_proper_share": {"entities": {"min_proper_share": 0.9}},
}


def _config(model, **more):
    from dask_prep.config import Config, preset

    config = Config.from_dict(more, base=preset("seed-v2")) if more else preset("seed-v2")
    config.tokenize.model = str(model)
    return config


def _changes(name: str, tokenizer_dir) -> dict:
    changes = json.loads(json.dumps(CHANGES[name]))
    if name == "tokenizer":
        changes["tokenize"]["model"] = str(tokenizer_dir)
    return changes


def _derive(client, source: Path, out: Path, changes: dict) -> dict:
    from dask_prep.pipeline.derive import derive

    with client.as_current():
        return derive(str(source), str(out), changes)


def _rows(out: Path, seq_len: int) -> list[dict]:
    import datasets

    return datasets.load_from_disk(str(out / f"entity_coref_v2_{seq_len}")).to_list()


def _check_same(client, pipeline_runner, inputs, base_config, source: Path, tmp: Path, changes: dict, **run) -> None:
    from dask_prep.config import Config

    config = Config.from_dict(changes, base=base_config)
    full = pipeline_runner(inputs, config, tmp / "full", **run)
    report = _derive(client, source, tmp / "derived", changes)
    seq_len = config.tokenize.seq_len
    expected = _rows(tmp / "full", seq_len)
    assert len(expected) > 20
    assert _rows(tmp / "derived", seq_len) == expected
    assert report["analysis"]["kiwi_chars"] == 0 and full.report["analysis"]["kiwi_chars"] > 0
    assert report["documents"] == full.report["documents"] and report["examples"] == full.report["examples"]
    assert report["derived_from"]["analysis_dir"] == str(source)
    assert report["config"] == config.to_dict()
    card = (tmp / "derived" / f"entity_coref_v2_{seq_len}" / "README.md").read_text(encoding="utf-8")
    assert f"dask_prep.derive({source.name!r}, 'derived', changes)" in card and "dask_prep.Pipeline(" not in card


# ---- the repo's sample ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_source(pipeline_runner, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("derive_sample_source") / "run"
    pipeline_runner([SAMPLE], _config(SAMPLE_TOKENIZER), out)
    return out


@pytest.mark.parametrize("name", ["seq_len", "max_entity_freq", "max_distance", "min_proper_share", "tokenizer"])
def test_derive_on_the_sample_equals_a_full_run(name, client, pipeline_runner, sample_source, tmp_path, request):
    tokenizer_dir = request.getfixturevalue("tokenizer_dir") if name == "tokenizer" else None
    changes = _changes(name, tokenizer_dir)
    _check_same(client, pipeline_runner, [SAMPLE], _config(SAMPLE_TOKENIZER), sample_source, tmp_path, changes)


# ---- the shared corpus -----------------------------------------------------------------------

SHARED_SAMPLES = 1000


@pytest.fixture(scope="module")
def shared_source(pipeline_runner, shard0, tokenizer_dir, tmp_path_factory) -> tuple[Path, object]:
    config = _config(tokenizer_dir, input={"max_samples": SHARED_SAMPLES})
    out = tmp_path_factory.mktemp("derive_shared_source") / "run"
    pipeline_runner([shard0], config, out)
    return out, config


@pytest.mark.parametrize("name", ["seq_len", "tokenizer", "max_entity_freq", "max_distance"])
def test_derive_on_the_shared_corpus_equals_a_full_run(name, client, pipeline_runner, shard0, shared_source, tmp_path):
    source, config = shared_source
    changes = _changes(name, SAMPLE_TOKENIZER) if name == "tokenizer" else _changes(name, None)
    _check_same(client, pipeline_runner, [shard0], config, source, tmp_path, changes)


# ---- the command line --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "dask_prep", *args, "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


def test_cli_derive_writes_its_own_report_card_and_manifest(sample_source, tmp_path):
    out = tmp_path / "derived"
    done = _cli("derive", str(sample_source), "--seq-len", "256", "--output-dir", str(out), "--n-workers", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["analysis"]["kiwi_chars"] == 0 and report["derived_from"]["run_dir"] == str(sample_source)
    assert "entities" in report["seconds"] and "analyse" not in report["seconds"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["derived_from"]["analysis_dir"] == str(sample_source)
    assert (out / "report.html").is_file()
    card = (out / "entity_coref_v2_256" / "README.md").read_text(encoding="utf-8")
    # The card names the command with paths reduced to their last component (issue 33: no machine paths).
    assert f"dask-prep derive {sample_source.name} --seq-len 256 --output-dir {out.name}" in card
    assert str(sample_source) not in card
    # A derived directory derives again, from the analysis it came from.
    again = _cli("derive", str(out), "--seq-len", "128", "--output-dir", str(tmp_path / "again"), "--n-workers", "1")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "report.json").read_text())["derived_from"]["analysis_dir"] == str(
        sample_source
    )
    # The output lock and directory rules are run's: a non-empty --output-dir needs --overwrite.
    refused = _cli("derive", str(sample_source), "--output-dir", str(out))
    assert refused.returncode == 2 and "--overwrite" in refused.stderr


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("dask-prep: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_changed_quality_rule_is_refused_in_one_line(sample_source, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: {nnp_ratio: {min: 0.03}}\n", encoding="utf-8")
    out = tmp_path / "out"
    line = _one_error_line(_cli("derive", str(sample_source), "--config", str(rules), "--output-dir", str(out)))
    assert "rules.nnp_ratio.min" in line and "Kiwi" in line
    assert not out.exists()


def test_a_run_without_a_finished_analysis_or_tokens_is_refused(sample_source, tmp_path):
    import shutil

    unfinished = tmp_path / "unfinished"
    shutil.copytree(sample_source, unfinished)
    (unfinished / "_work" / "stats" / "analyse-00001.json").unlink()
    line = _one_error_line(_cli("derive", str(unfinished), "--output-dir", str(tmp_path / "a")))
    assert "not finished" in line and "--resume" in line

    older = tmp_path / "older"
    shutil.copytree(sample_source, older)
    manifest = json.loads((older / "manifest.json").read_text(encoding="utf-8"))
    del manifest["analysis_format"]  # as a run by the previous version wrote it
    (older / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    line = _one_error_line(_cli("derive", str(older), "--output-dir", str(tmp_path / "b")))
    assert "format 0" in line and "dask-prep run" in line

    line = _one_error_line(_cli("derive", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "c")))
    assert "not a dask-prep run directory" in line
