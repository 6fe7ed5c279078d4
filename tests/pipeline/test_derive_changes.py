"""Unit tests of which config changes `derive` makes and which it refuses (they need Kiwi again)."""

from __future__ import annotations

from dask_prep.config import preset
from dask_prep.pipeline.derive import refused_change


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
        {"output__license": "cc-by-4.0"},
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
