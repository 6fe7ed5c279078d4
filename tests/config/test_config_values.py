"""Issue 32, case 7: every config value and cluster option is checked before any cluster starts.

Beside the types (test_config_types.py): values out of range, NaN, a config file that is not
UTF-8, a memory limit that is not a size. Each is one line naming the value, exit 2, nothing
written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "sample"

# name: (config file bytes or None, extra flags, what the one line must name)
INVALID = {
    "config_not_utf8": ("rules:\n  length: {max: 2500}\n# caf\xe9\n".encode("latin-1"), [], ["not UTF-8", "0xe9"]),
    "rule_bound_nan": (b"rules:\n  length: {min: .nan}\n", [], ["rules.length.min", "nan", "finite"]),
    "rule_bound_inf": (b"rules:\n  length: {max: .inf}\n", [], ["rules.length.max", "inf"]),
    "timeout_nan_in_config": (b"input:\n  analysis_timeout: .nan\n", [], ["input.analysis_timeout", "nan"]),
    "timeout_nan_flag": (None, ["--analysis-timeout", "nan"], ["input.analysis_timeout", "nan"]),
    "timeout_inf_flag": (None, ["--analysis-timeout", "inf"], ["input.analysis_timeout", "inf"]),
    "fraction_nan_flag": (None, ["--validation-fraction", "nan"], ["output.validation_fraction", "nan"]),
    "max_samples_negative": (None, ["--max-samples", "-5"], ["input.max_samples", "-5"]),
    "max_samples_zero": (None, ["--max-samples", "0"], ["input.max_samples", "0"]),
    "min_chars_negative": (b"entities:\n  min_chars: -1\n", [], ["entities.min_chars", "-1"]),
    "min_mentions_negative": (b"entities:\n  min_mentions: -2\n", [], ["entities.min_mentions", "-2"]),
    "masked_mentions_negative": (b"entities:\n  max_masked_mentions: -3\n", [], ["entities.max_masked_mentions", "-3"]),
    "min_distance_negative": (b"entities:\n  min_distance: -10\n", [], ["entities.min_distance", "-10"]),
    "max_distance_negative": (b"entities:\n  max_distance: -2000\n", [], ["entities.max_distance", "-2000"]),
    "max_distance_huge": (b"entities:\n  max_distance: 1000000000000000000000000000000\n", [], ["max_distance"]),
    "max_entity_freq_flag": (None, ["--max-entity-freq", "-1"], ["max_entity_freq"]),
    "memory_limit_banana": (None, ["--memory-limit", "banana"], ["--memory-limit", "'banana'"]),
    "memory_limit_negative": (None, ["--memory-limit=-1GiB"], ["--memory-limit", "'-1GiB'"]),
    "memory_limit_nan": (None, ["--memory-limit", "nan"], ["--memory-limit", "'nan'"]),
    "n_workers_zero": (None, ["--n-workers", "0"], ["--n-workers", "0"]),
    "threads_negative": (None, ["--threads-per-worker", "-1"], ["--threads-per-worker", "-1"]),
    "kiwi_threads_zero": (None, ["--kiwi-threads", "0"], ["--kiwi-threads", "0"]),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_an_invalid_value_is_one_line_exit_2_and_no_cluster(name, tmp_path, capfd, monkeypatch):
    import dask_prep.pipeline.cluster
    from dask_prep.cli.main import main

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for an invalid value")

    monkeypatch.setattr(dask_prep.pipeline.cluster, "start_client", no_cluster)
    content, flags, parts = INVALID[name]
    argv = ["run", str(SAMPLE / "ko_sample.jsonl"), "--model", str(SAMPLE / "tokenizer"), *flags]
    if content is not None:
        config = tmp_path / f"{name}.yaml"
        config.write_bytes(content)
        argv += ["--config", str(config)]
    capfd.readouterr()
    code = main([*argv, "--output-dir", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dask-prep: error: "), err
    assert "Traceback" not in err and out == ""
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("limit", ["auto", "4GiB", "500MB", "0.5", "0", "1000000"])
def test_memory_sizes_distributed_takes_are_accepted(limit):
    from dask_prep.pipeline.cluster import ClusterOptions

    ClusterOptions(memory_limit=limit).check()
