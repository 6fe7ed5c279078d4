"""Every rule, threshold and run setting in one typed object, with named presets.

A preset is a plain `Config`; `--config RULES.yaml` overrides any field of it, and
`Config.to_yaml()` prints YAML that `Config.from_yaml()` accepts again.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dask_prep.config.sections import (
    NAME_HEADS,
    SEED_STOP_ENTITIES,
    AnalysisConfig,
    ConfigError,
    DedupConfig,
    EntityConfig,
    InputConfig,
    NearDedupConfig,
    OutputConfig,
    Rule,
    TokenizeConfig,
)
from dask_prep.config.type_checks import type_problem


@dataclass
class Config:
    """Everything that decides what the pipeline produces.

    Cluster and output locations are not here: they do not change the dataset, so they
    do not belong in the config hash that `--resume` compares.
    """

    preset: str = "seed-v2"
    rules: dict[str, Rule] = field(default_factory=dict)
    entities: EntityConfig = field(default_factory=EntityConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Config | None = None) -> Config:
        """Overlay `data` on `base` (or on the preset that `data` names)."""
        if not isinstance(data, dict):
            raise ConfigError("the config must be a mapping of fields, e.g. 'rules:' or 'entities:'")
        preset_name = data.get("preset", base.preset if base else "seed-v2")
        if not isinstance(preset_name, str):
            raise ConfigError(f"preset must be a string, one of {', '.join(PRESETS)}; not {preset_name!r}")
        config = copy.deepcopy(base) if base is not None else preset(preset_name)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        config.preset = preset_name
        rules = data.get("rules") or {}
        if not isinstance(rules, dict):
            raise ConfigError(f"rules must be a mapping of rule names, not {rules!r}")
        for name, value in rules.items():
            if name not in config.rules:
                raise ConfigError(f"unknown rule '{name}' for preset '{preset_name}'; known: {', '.join(config.rules)}")
            if isinstance(value, bool):  # `pronoun: false` switches a rule off
                config.rules[name].enabled = value
                continue
            _overlay(config.rules[name], value, f"rules.{name}")
        for section in ("entities", "tokenize", "input", "output", "analysis"):
            if section in data and data[section] is not None:
                _overlay(getattr(config, section), data[section], section)
        if data.get("dedup") is not None:
            _overlay_dedup(config.dedup, data["dedup"])
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, base: Config | None = None) -> Config:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
                "save it as UTF-8"
            ) from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"{path}{where} is not valid YAML ({problem}); fix the syntax, "
                "see `dask-prep presets show seed-v2` for the format"
            ) from exc
        return cls.from_dict(data, base)

    def validate(self) -> None:
        problem = type_problem(self)  # first: the range checks below compare numbers
        if problem is not None:
            raise ConfigError(problem)
        t = self.tokenize
        if t.mask_style not in ("whole", "single"):
            raise ConfigError(f"tokenize.mask_style must be 'whole' or 'single', not {t.mask_style!r}")
        if t.seq_len < 8:
            raise ConfigError(f"tokenize.seq_len must be at least 8, not {t.seq_len}")
        if not self.input.analysis_timeout or self.input.analysis_timeout <= 0:
            raise ConfigError("input.analysis_timeout must be a positive number of seconds")
        if self.input.partition_size < 1:
            raise ConfigError("input.partition_size must be a positive number of documents")
        if self.input.max_samples is not None and self.input.max_samples < 1:
            raise ConfigError(f"input.max_samples must be positive (or null for all), not {self.input.max_samples}")
        e = self.entities
        if e.max_entity_freq is not None and e.max_entity_freq < 1:
            raise ConfigError("entities.max_entity_freq must be positive (or null for no cap)")
        problem = entity_range_problem(e)
        if problem is not None:
            raise ConfigError(problem)
        if e.mentions not in ("names", "whole_word", "nnp"):
            raise ConfigError(f"entities.mentions must be 'names', 'whole_word' or 'nnp', not {e.mentions!r}")
        if not 0 <= e.min_proper_share <= 1:
            raise ConfigError(f"entities.min_proper_share must be between 0 and 1, not {e.min_proper_share!r}")
        fraction = self.output.validation_fraction
        is_number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
        if fraction is not None and (not is_number or not 0 < fraction < 1):
            raise ConfigError(f"output.validation_fraction must be between 0 and 1 (exclusive), not {fraction!r}")
        near = self.dedup.near
        if not 0 <= near.threshold <= 1:
            raise ConfigError(f"dedup.near.threshold must be between 0 and 1, not {near.threshold!r}")
        for name in ("ngram", "bands", "rows"):
            if getattr(near, name) < 1:
                raise ConfigError(f"dedup.near.{name} must be a positive integer, not {getattr(near, name)!r}")
        for name, rule in self.rules.items():
            if rule.min is not None and rule.max is not None and rule.min > rule.max:
                raise ConfigError(f"rules.{name}: min {rule.min} is above max {rule.max}")


def _overlay_dedup(target: DedupConfig, values: Any, where: str = "dedup") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, not {values!r}")
    unknown = set(values) - {"near"}
    if unknown:
        raise ConfigError(f"unknown field '{where}.{sorted(unknown)[0]}'; known: near")
    near = values.get("near")
    if isinstance(near, bool):  # `near: false` switches it off
        target.near.enabled = near
    elif near is not None:
        _overlay(target.near, near, f"{where}.near")


def entity_range_problem(e: EntityConfig) -> str | None:
    """One line naming the first `entities` count or distance out of range, or None."""
    for name in ("min_chars", "min_mentions", "max_masked_mentions"):
        if getattr(e, name) < 1:
            return f"entities.{name} must be at least 1, not {getattr(e, name)}"
    if e.min_distance < 0:
        return f"entities.min_distance must be 0 or more characters, not {e.min_distance}"
    if e.max_distance < e.min_distance:
        return f"entities.max_distance {e.max_distance} is below entities.min_distance {e.min_distance}"
    return None


def _overlay(target: Any, values: Any, where: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, not {values!r}")
    known = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown field '{where}.{key}'; known: {', '.join(known)}")
        current = getattr(target, key)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key} must be true or false, not {value!r}")
        if isinstance(current, (int, float)) and not isinstance(current, bool) and value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be a number, not {value!r}")
        if isinstance(current, list) and not isinstance(value, list):
            raise ConfigError(f"{where}.{key} must be a list, not {value!r}")
        setattr(target, key, value)


# ---- presets --------------------------------------------------------------------------


# Cheap rules run before Kiwi, in this order; `too_long` guards Kiwi against pathological
# documents in every preset (a long run of characters without spaces takes Kiwi seconds).
def _seed_v2() -> Config:
    rules = {
        "length": Rule(min=800, max=2500),
        "sentence_marks": Rule(min=3),
        "hangul_ratio": Rule(min=0.4),
        "symbol_ratio": Rule(max=0.3),
        "too_long": Rule(max=100_000),
        "nnp_ratio": Rule(min=0.05, max=0.20),
        "pronoun": Rule(max=0),
        "no_repeated_entity": Rule(min=1),
    }
    return Config(preset="seed-v2", rules=rules)


def _fineweb2_ko() -> Config:
    """FineWeb-2's Korean (kor_Hang) quality filtering, then the coreference selection.

    Rule names are datatrove's drop reasons (dask_prep/analysis/filters/fineweb2.py); thresholds are
    FineWeb-2's configs/kor_Hang.yml and its pipeline's fixed settings. Line and
    character rules run before Kiwi, word rules on the one shared analysis.
    """
    rules = {
        "too_long": Rule(max=100_000),
        # Gopher repetition (paragraph and line-character checks are off in FineWeb-2)
        "dup_line_frac": Rule(max=0.374),
        "top_2_gram": Rule(max=0.282),
        "top_3_gram": Rule(max=0.228),
        "top_4_gram": Rule(max=0.185),
        "duplicated_5_n_grams": Rule(max=0.201),
        "duplicated_6_n_grams": Rule(max=0.184),
        "duplicated_7_n_grams": Rule(max=0.168),
        "duplicated_8_n_grams": Rule(max=0.154),
        "duplicated_9_n_grams": Rule(max=0.14),
        "duplicated_10_n_grams": Rule(max=0.127),
        # FineWeb quality
        "line_punct_ratio": Rule(min=0.062),
        "short_line_ratio": Rule(enabled=False, max=0.67),
        "char_dup_ratio": Rule(max=0.1),
        "list_ratio": Rule(max=0.196),
        # Gopher quality
        "gopher_short_doc": Rule(min=50),
        "gopher_long_doc": Rule(max=100_000),
        "gopher_below_avg_threshold": Rule(min=1),
        "gopher_above_avg_threshold": Rule(max=6),
        "gopher_too_many_hashes": Rule(max=0.1),
        "gopher_too_many_ellipsis": Rule(max=0.1),
        "gopher_too_many_bullets": Rule(max=0.9),
        "gopher_too_many_end_ellipsis": Rule(max=0.3),
        "gopher_below_alpha_threshold": Rule(min=0.791),
        "gopher_enough_stop_words": Rule(min=2),
        # coreference selection, as in seed-v2
        "nnp_ratio": Rule(min=0.05, max=0.20),
        "pronoun": Rule(max=0),
        "no_repeated_entity": Rule(min=1),
    }
    return Config(preset="fineweb2-ko", rules=rules)


PRESETS = {"seed-v2": _seed_v2, "fineweb2-ko": _fineweb2_ko}
# One line each, for `dask-prep presets list`.
PRESET_DESCRIPTIONS = {
    "seed-v2": "the earlier script's rules: 800-2,500 characters, sentence marks, Hangul and symbol "
    "ratios, NNP ratio, no pronoun, a repeated entity (the default)",
    "fineweb2-ko": "FineWeb-2's Korean quality filters (Gopher repetition and quality, FineWeb quality), "
    "then seed-v2's NNP-ratio, pronoun and repeated-entity rules; much slower",
}


def preset(name: str) -> Config:
    """A fresh copy of a named preset."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; known: {', '.join(PRESETS)}") from None


__all__ = [
    "AnalysisConfig",
    "Config",
    "ConfigError",
    "DedupConfig",
    "EntityConfig",
    "InputConfig",
    "NAME_HEADS",
    "NearDedupConfig",
    "OutputConfig",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "Rule",
    "SEED_STOP_ENTITIES",
    "TokenizeConfig",
    "preset",
]
