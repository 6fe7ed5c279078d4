"""Unit tests of dask_prep.config: the presets, YAML round trips, overrides and their errors."""

from __future__ import annotations

import pytest
from support.data import SEED_V2_RULES

from dask_prep.config import PRESETS, Config, ConfigError, preset


def test_seed_v2_preset_has_the_issue_rules_in_order():
    config = preset("seed-v2")
    issue_rules = [name for name in config.rules if name != "too_long"]
    assert issue_rules == list(SEED_V2_RULES)
    for name, (low, high) in SEED_V2_RULES.items():
        rule = config.rules[name]
        assert (rule.enabled, rule.min, rule.max) == (True, low, high), name
    e = config.entities
    assert (e.min_chars, e.min_mentions, e.max_masked_mentions) == (2, 2, 3)
    assert (e.min_distance, e.max_distance, e.max_entity_freq) == (10, 2000, 1000)
    assert e.stop_entities == list("것수등때곳점년월일")
    assert (config.tokenize.seq_len, config.tokenize.mask_style, config.tokenize.pad_to_max_length) == (
        2048,
        "whole",
        False,
    )


def test_preset_is_a_fresh_copy():
    first = preset("seed-v2")
    first.rules["length"].max = 1
    first.entities.stop_entities.append("서울")
    assert preset("seed-v2").rules["length"].max == 2500
    assert "서울" not in preset("seed-v2").entities.stop_entities


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_round_trip_of_every_preset(tmp_path, name):
    original = preset(name)
    path = tmp_path / "rules.yaml"
    path.write_text(original.to_yaml(), encoding="utf-8")
    loaded = Config.from_yaml(path)
    assert loaded == original
    assert loaded.config_hash() == original.config_hash()


def test_yaml_round_trip_of_a_changed_config(tmp_path):
    config = preset("seed-v2")
    config.rules["length"].max = 20_000
    config.rules["pronoun"].enabled = False
    config.entities.max_entity_freq = None
    config.entities.stop_entities = ["서울", "것"]
    config.tokenize.seq_len = 512
    config.tokenize.mask_style = "single"
    config.input.text_field = "body"
    path = tmp_path / "changed.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    assert Config.from_yaml(path) == config
    assert Config.from_yaml(path) != preset("seed-v2")


def test_overrides_change_only_what_they_name():
    config = Config.from_dict(
        {
            "rules": {"length": {"max": 20000}, "pronoun": False},
            "entities": {"max_entity_freq": 5},
            "tokenize": {"seq_len": 512},
        }
    )
    expected = preset("seed-v2")
    expected.rules["length"].max = 20000
    expected.rules["pronoun"].enabled = False
    expected.entities.max_entity_freq = 5
    expected.tokenize.seq_len = 512
    assert config == expected
    assert config.rules["length"].min == 800  # the other bound is kept
    assert config.config_hash() != preset("seed-v2").config_hash()


def test_overrides_on_a_base_keep_the_base():
    base = preset("seed-v2")
    base.tokenize.model = "sample/tokenizer"
    config = Config.from_dict({"rules": {"nnp_ratio": {"min": 0.1}}}, base=base)
    assert config.tokenize.model == "sample/tokenizer"
    assert config.rules["nnp_ratio"].min == 0.1 and config.rules["nnp_ratio"].max == 0.2
    assert base.rules["nnp_ratio"].min == 0.05  # the base itself is not modified


def test_an_empty_yaml_file_is_the_default_preset(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert Config.from_yaml(path) == preset("seed-v2")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"rulez": {}}, "unknown config section"),
        ({"rules": {"lenght": {"max": 3}}}, "unknown rule 'lenght'"),
        ({"rules": {"length": {"maximum": 3}}}, "unknown field 'rules.length.maximum'"),
        ({"rules": {"length": {"max": "many"}}}, "rules.length.max must be a number"),
        ({"rules": {"length": {"enabled": "yes"}}}, "rules.length.enabled must be true or false"),
        ({"rules": {"length": 5}}, "rules.length must be a mapping"),
        ({"rules": {"length": {"min": 3000}}}, "rules.length: min 3000 is above max 2500"),
        ({"entities": {"stop_entities": "것"}}, "entities.stop_entities must be a list"),
        ({"entities": {"max_entity_freq": 0}}, "entities.max_entity_freq must be positive"),
        ({"tokenize": {"mask_style": "half"}}, "tokenize.mask_style must be 'whole' or 'single'"),
        ({"tokenize": {"seq_len": 4}}, "tokenize.seq_len must be at least 8"),
        ({"tokenize": {"pad_to_max_length": 1}}, "tokenize.pad_to_max_length must be true or false"),
        ({"input": {"partition_size": 0}}, "input.partition_size must be a positive number"),
        ({"preset": "seed-v9"}, "unknown preset 'seed-v9'"),
        (["length"], "must be a mapping"),
    ],
)
def test_invalid_configs_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Config.from_dict(data)


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: {length: [1, 2", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        Config.from_yaml(bad)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; known: .*seed-v2"):
        preset("nope")
