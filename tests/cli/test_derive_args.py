"""Unit tests of `dask-prep derive`'s options: `run`'s after the analysis, over the run's config."""

from __future__ import annotations

import pytest

from dask_prep.cli.args import build_parser, config_from_args
from dask_prep.config import preset


def test_derive_takes_run_s_options_after_the_analysis_over_the_run_s_config(tmp_path):
    base = preset("seed-v2")
    base.tokenize.model = "/models/a"
    rules = tmp_path / "e.yaml"
    rules.write_text("entities: {max_distance: 700}\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["derive", "RUN", "--output-dir", "OUT", "--seq-len", "512", "--config", str(rules), "--max-entity-freq", "5"]
    )
    config = config_from_args(args, base=base)
    assert (config.tokenize.seq_len, config.tokenize.model) == (512, "/models/a")
    assert (config.entities.max_distance, config.entities.max_entity_freq) == (700, 5)
    assert args.run_dir == "RUN" and args.output_dir == "OUT"


@pytest.mark.parametrize("flag", ["--no-dedup", "--full-analysis", "--max-samples=3", "--preset=fineweb2-ko"])
def test_derive_has_no_option_that_needs_kiwi(flag):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["derive", "RUN", "--output-dir", "OUT", flag])
    assert exit_info.value.code == 2
