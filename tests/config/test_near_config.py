"""Config `dedup.near` and the flags that turn dedup off (issue 31)."""

from __future__ import annotations

import pytest

from dask_prep.config import Config, ConfigError, preset


@pytest.mark.parametrize("name", ["seed-v2", "fineweb2-ko"])
def test_near_dedup_is_on_by_default_aiming_at_jaccard_08(name) -> None:
    from dask_prep.dedup.near import candidate_probability

    near = preset(name).dedup.near
    assert near.enabled and (near.ngram, near.bands, near.rows, near.threshold) == (5, 20, 5, 0.7)
    assert candidate_probability(0.8, near.bands, near.rows) > 0.99


def test_dedup_near_overrides_and_checks() -> None:
    config = Config.from_dict({"dedup": {"near": {"bands": 10, "threshold": 0.8}}})
    assert (config.dedup.near.bands, config.dedup.near.threshold, config.dedup.near.rows) == (10, 0.8, 5)
    assert not Config.from_dict({"dedup": {"near": False}}).dedup.near.enabled
    assert Config.from_dict(Config().to_dict()).dedup.near == Config().dedup.near
    for bad, message in [
        ({"near": {"threshold": 1.5}}, "dedup.near.threshold"),
        ({"near": {"bands": 0}}, "dedup.near.bands"),
        ({"near": {"ngram": 2.5}}, "dedup.near.ngram"),
        ({"near": {"shingle": 3}}, "dedup.near.shingle"),
        ({"far": {}}, "dedup.far"),
        ("yes", "dedup must be a mapping"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            Config.from_dict({"dedup": bad})


def test_no_dedup_turns_off_both_and_no_near_dedup_only_near() -> None:
    from dask_prep.cli.args import build_parser, config_from_args

    def config(*flags: str):
        args = build_parser().parse_args(["run", "in.jsonl", "--output-dir", "out", *flags])
        return config_from_args(args)

    assert config().input.dedup and config().dedup.near.enabled
    assert config("--no-near-dedup").input.dedup and not config("--no-near-dedup").dedup.near.enabled
    assert not config("--no-dedup").input.dedup and not config("--no-dedup").dedup.near.enabled
