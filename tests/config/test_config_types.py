"""Issue 25: every config field is type-checked when the config is loaded, before any cluster.

A wrong type is one line naming the field, the value and what it must be, with exit code 2.
The generic test walks the config dataclasses, so a field added later is covered by it
without a line of its own here.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from dask_prep.config import Config, ConfigError, preset

# (YAML text, what the one line must name) for every kind of field.
INVALID = {
    "float_or_null_rule_bound": ("rules:\n  sentence_marks: {max: lots}\n", ["rules.sentence_marks.max", "'lots'"]),
    "rule_not_a_mapping": ("rules:\n  length: long\n", ["rules.length", "'long'"]),
    "rule_enabled_not_bool": ("rules:\n  length: {enabled: sometimes}\n", ["rules.length.enabled", "'sometimes'"]),
    "rules_not_a_mapping": ("rules: [length]\n", ["rules", "['length']"]),
    "int_or_null": ("input:\n  max_samples: ten\n", ["input.max_samples", "'ten'"]),
    "int_given_a_fraction": ("input:\n  partition_size: 2.5\n", ["input.partition_size", "2.5"]),
    "int": ("entities:\n  min_chars: two\n", ["entities.min_chars", "'two'"]),
    "int_given_a_bool": ("entities:\n  min_mentions: true\n", ["entities.min_mentions", "True"]),
    "int_or_null_cap": ("entities:\n  max_entity_freq: lots\n", ["entities.max_entity_freq", "'lots'"]),
    "str": ("tokenize:\n  model: 42\n", ["tokenize.model", "42"]),
    "str_given_a_list": ("input:\n  text_field: [a, b]\n", ["input.text_field", "['a', 'b']"]),
    "bool": ("input:\n  dedup: maybe\n", ["input.dedup", "'maybe'"]),
    "bool_given_a_number": ("output:\n  decisions: 1\n", ["output.decisions", "1"]),
    "list": ("entities:\n  stop_entities: 것\n", ["entities.stop_entities", "'것'"]),
    "list_element": ("entities:\n  stop_entities: [것, 3]\n", ["entities.stop_entities[1]", "3"]),
    "section_not_a_mapping": ("entities: 3\n", ["entities", "3"]),
    "preset_not_a_string": ("preset: [seed-v2]\n", ["preset", "['seed-v2']"]),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_a_wrong_type_is_one_line_exit_2_and_no_cluster(name, tmp_path, capfd, monkeypatch):
    import dask_prep.pipeline.cluster
    from dask_prep.cli.main import main

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for an invalid config")

    monkeypatch.setattr(dask_prep.pipeline.cluster, "start_client", no_cluster)
    text, parts = INVALID[name]
    config = tmp_path / f"{name}.yaml"
    config.write_text(text, encoding="utf-8")
    sample = Path(__file__).resolve().parents[2] / "sample"
    argv = ["run", str(sample / "ko_sample.jsonl"), "--model", str(sample / "tokenizer")]
    capfd.readouterr()
    code = main([*argv, "--config", str(config), "--output-dir", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dask-prep: error: "), err
    assert "Traceback" not in err and out == ""
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert "must be" in lines[0]  # and what it must be
    assert not (tmp_path / "out").exists()


def _fields(cls: type, prefix: str = ""):
    """(dotted name, type hint) of every leaf field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _fields(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hint


class _Unexpected:
    def __repr__(self) -> str:
        return "<unexpected>"


def _wrong_value(hint) -> object:
    """A value of no type the hint allows (a list, a string or an object)."""
    import types

    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    origins = {typing.get_origin(a) or a for a in allowed}
    if str in origins:
        return [1]
    if list in origins or dict in origins:
        return "not-a-container"
    return _Unexpected()


def test_every_field_of_every_section_is_checked():
    """Each leaf field of Config (and of a rule), set to a value of a wrong type, is refused by name."""
    leaves = [(name, hint) for name, hint in _fields(Config) if name not in ("rules",)]
    leaves += [(f"rules.length.{name}", hint) for name, hint in _fields(type(preset("seed-v2").rules["length"]))]
    assert len(leaves) >= 15
    for dotted, hint in leaves:
        config = preset("seed-v2")
        *path, leaf = dotted.split(".")
        target = config
        for part in path:
            target = target[part] if isinstance(target, dict) else getattr(target, part)
        setattr(target, leaf, _wrong_value(hint))
        with pytest.raises(ConfigError) as caught:
            config.validate()
        message = str(caught.value)
        assert message.startswith(f"{dotted} must be "), (dotted, message)
        assert "\n" not in message
