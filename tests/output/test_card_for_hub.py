"""Issue 33: what the dataset card tells a Hub user (no machine paths, only changed config)."""

from __future__ import annotations

from dask_prep.config import preset
from dask_prep.output.card import COLUMNS, _tokenizer_line, config_changes, short_command
from dask_prep.report.build import length_warnings


def test_the_command_keeps_only_the_last_component_of_paths():
    command = (
        "dask-prep --quiet run /data/hplt/kor_Hang/00000.jsonl.zst s3://bucket/corpus/part.jsonl "
        "--model /home/me/tokenizers/kf --output-dir /tmp/runs/v2 --overwrite"
    )
    assert short_command(command) == (
        "dask-prep --quiet run 00000.jsonl.zst part.jsonl --model kf --output-dir v2 --overwrite"
    )
    hub = "dask-prep run x.jsonl --model kakaobank/kf-deberta-base --output-dir out/q"
    assert short_command(hub) == "dask-prep run x.jsonl --model kakaobank/kf-deberta-base --output-dir q"


def test_only_fields_that_differ_from_the_preset():
    config = preset("seed-v2")
    assert config_changes(config.to_dict()) == {}
    config.entities.max_distance = 3000
    config.output.license = "cc-by-sa-3.0"
    assert config_changes(config.to_dict()) == {
        "entities": {"max_distance": 3000},
        "output": {"license": "cc-by-sa-3.0"},
    }


def test_a_local_tokenizer_is_named_without_its_directory():
    line = _tokenizer_line(
        {"model": "/home/me/tok/koelectra", "class": "BertTokenizer", "vocab_size": 32200, "local": True}
    )
    assert line == "a local tokenizer, `koelectra` (BertTokenizer, vocabulary of 32,200)"
    assert "huggingface.co/kakaobank/kf-deberta-base" in _tokenizer_line({"model": "kakaobank/kf-deberta-base"})


def test_every_output_column_has_a_meaning():
    from dask_prep.coref.tokenization import output_schema

    assert set(output_schema(True).names) == set(COLUMNS)


def test_one_warning_line_for_rows_over_the_model_max_length():
    assert length_warnings(0, 10, 512) == []
    assert length_warnings(3, 10, None) == []
    [line] = length_warnings(3, 10, 512)
    assert "3 of 10 examples (30.0%)" in line and "512" in line
