"""Unit tests of what stage 1 stores of Kiwi's analysis and of the one entity step `run` and `derive` share."""

from __future__ import annotations

from collections import namedtuple

import pytest

from dask_prep.config import EntityConfig
from dask_prep.coref.entities import build_candidates, find_repeated_entities
from dask_prep.coref.kept_analysis import StoredToken, decode_tokens, document_entities, encode_tokens, stored_tokens
from dask_prep.coref.names import example_entities, proper_counts, without_echoes

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


@pytest.mark.parametrize("mentions", ["names", "whole_word", "nnp"])
def test_the_entity_step_is_the_rules_of_coref_entities_and_names(mentions):
    config = EntityConfig(mentions=mentions, min_distance=1)
    found = document_entities("d1", TEXT, decode_tokens(TEXT, encode_tokens(TEXT, stored_tokens(TOKENS))), config)
    qualifying = find_repeated_entities(TOKENS, config)
    examples = qualifying if mentions == "nnp" else example_entities(TEXT, TOKENS, config)
    echoes = 0
    if mentions == "names":
        examples, echoes = without_echoes(TEXT, examples)
    assert found.qualifying == len(qualifying) == 1
    assert found.giving_examples == len(examples)
    assert found.candidates == build_candidates("d1", examples, config)
    assert found.proper_counts == proper_counts(TEXT, TOKENS, config)
    assert found.echoes == echoes
    if mentions != "names":
        assert len(found.candidates) == (2 if mentions == "nnp" else 1)  # 서울시 is a longer word


def test_the_entity_step_drops_title_echoes_and_counts_them():
    text = "서울\n서울은 크다. 서울에서 했다."
    tokens = [
        StoredToken("서울", "NNP", 0, 2),
        StoredToken("서울", "NNP", 3, 2),
        StoredToken("은", "JX", 5, 1),
        StoredToken("크", "VA", 7, 1),
        StoredToken("다", "EF", 8, 1),
        StoredToken(".", "SF", 9, 1),
        StoredToken("서울", "NNP", 11, 2),
        StoredToken("에서", "JKB", 13, 2),
    ]
    config = EntityConfig(min_distance=1)
    expected, echoes = without_echoes(text, example_entities(text, tokens, config))
    found = document_entities("d1", text, tokens, config)
    assert found.echoes == echoes
    assert found.candidates == build_candidates("d1", expected, config)
    assert found.proper_counts == proper_counts(text, tokens, config)
