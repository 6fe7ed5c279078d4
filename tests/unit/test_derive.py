"""Unit tests of what `derive` rests on: the stored tokens, the entity step, which changes it refuses, its options."""

from __future__ import annotations

from collections import namedtuple

import pytest

from dask_prep.cli.args import build_parser, config_from_args
from dask_prep.config import EntityConfig, preset
from dask_prep.coref.entities import build_candidates, find_example_entities, find_repeated_entities
from dask_prep.coref.kept_analysis import StoredToken, decode_tokens, document_entities, encode_tokens, stored_tokens
from dask_prep.pipeline.derive import refused_change

Tok = namedtuple("Tok", "form tag start len")  # what Kiwi's tokens give the entity step
TEXT = "서울에서 했다. 서울은 크다. 서울시"
# Kiwi writes 했 as 하/VV + 었/EP: forms that are not the text they cover.
TOKENS = [
    Tok("서울", "NNP", 0, 2),
    Tok("에서", "JKB", 2, 2),
    Tok("하", "VV", 5, 1),
    Tok("었", "EP", 5, 1),
    Tok("다", "EF", 6, 1),
    Tok(".", "SF", 7, 1),
    Tok("서울", "NNP", 9, 2),
    Tok("은", "JX", 11, 1),
    Tok("크", "VA", 13, 1),
    Tok("다", "EF", 14, 1),
    Tok(".", "SF", 15, 1),
    Tok("서울", "NNP", 17, 2),
    Tok("시", "NNG", 19, 1),
]


def test_stored_tokens_round_trip_and_leave_out_forms_the_text_spells():
    stored = stored_tokens(TOKENS)
    columns = encode_tokens(TEXT, stored)
    assert columns["form"] == [None, None, "하", "었", None, None, None, None, None, None, None, None, None]
    assert decode_tokens(TEXT, columns) == stored
    assert stored[0] == StoredToken("서울", "NNP", 0, 2) and stored[0].end == 2


@pytest.mark.parametrize("mentions", ["whole_word", "nnp"])
def test_the_entity_step_is_the_rules_of_coref_entities(mentions):
    config = EntityConfig(mentions=mentions, min_distance=1)
    found = document_entities("d1", TEXT, decode_tokens(TEXT, encode_tokens(TEXT, stored_tokens(TOKENS))), config)
    qualifying = find_repeated_entities(TOKENS, config)
    examples = qualifying if mentions == "nnp" else find_example_entities(TEXT, TOKENS, config)
    assert found.qualifying == len(qualifying) == 1
    assert found.giving_examples == len(examples)
    assert found.candidates == build_candidates("d1", examples, config)
    assert len(found.candidates) == (2 if mentions == "nnp" else 1)  # 서울시 is a longer word


def _changed(**fields):
    config = preset("seed-v2")
    for dotted, value in fields.items():
        section, name = dotted.split("__")
        setattr(getattr(config, section), name, value)
    return config


def test_changes_after_the_analysis_are_derivable():
    source = preset("seed-v2")
    for change in (
        {"tokenize__seq_len": 512},
        {"tokenize__model": "other"},
        {"tokenize__mask_style": "single"},
        {"entities__max_distance": 500},
        {"entities__max_entity_freq": 3},
        {"entities__mentions": "nnp"},
        {"output__validation_fraction": 0.1},
    ):
        assert refused_change(source, _changed(**change)) is None, change


def test_changes_that_need_kiwi_again_are_refused_naming_the_field():
    source = preset("seed-v2")
    looser = preset("seed-v2")
    looser.rules["nnp_ratio"].min = 0.03
    assert refused_change(source, looser).startswith("derive cannot change rules.nnp_ratio.min (0.05 -> 0.03)")
    assert "input.dedup" in refused_change(source, _changed(input__dedup=False))
    assert "input.text_field" in refused_change(source, _changed(input__text_field="body"))
    assert "analysis.progressive" in refused_change(source, _changed(analysis__progressive=False))
    assert "\n" not in refused_change(source, looser)


def test_entity_fields_the_keep_rule_reads_are_refused_only_while_it_is_on():
    source = preset("seed-v2")
    assert "no_repeated_entity" in refused_change(source, _changed(entities__min_chars=3))
    source.rules["no_repeated_entity"].enabled = False
    changed = _changed(entities__min_chars=3)
    changed.rules["no_repeated_entity"].enabled = False
    assert refused_change(source, changed) is None


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
