"""Unit tests of the seed-v2 rules and FilterChain on inline Korean strings and the repo's sample.

Kiwi is real where a rule needs it; fake tokens are used where an exact value must be known
in advance. No cluster, no ../shared.
"""

from __future__ import annotations

import pytest
from support.data import SAMPLE, SEED_V2_RULES, Tok, read_all

from dask_prep.analysis.filters import (
    FilterChain,
    HangulRatioFilter,
    LengthFilter,
    NNPRatioFilter,
    PronounFilter,
    RepeatedEntityFilter,
    SentenceMarksFilter,
    SymbolRatioFilter,
    kiwi_analyser,
)
from dask_prep.config import Config, preset
from dask_prep.coref.entities import build_candidates
from dask_prep.document import Document


def doc(text: str, doc_id: str = "d") -> Document:
    return Document(doc_id=doc_id, text=text, source="inline", line=1)


@pytest.fixture(scope="module")
def kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def _rule_filter(cls, name: str):
    config = preset("seed-v2")
    return cls(name).configured(config.rules[name], config)


def test_length_counts_python_characters_and_bounds_are_inclusive():
    f = _rule_filter(LengthFilter, "length")
    assert f.measure(doc("서울 가나다!")) == 7
    assert f.filter(doc("가" * 799)) == (False, "length")
    assert f.filter(doc("가" * 800)) is True
    assert f.filter(doc("가" * 2500)) is True
    assert f.filter(doc("가" * 2501)) == (False, "length")


def test_sentence_marks_counts_only_period_question_and_exclamation():
    f = _rule_filter(SentenceMarksFilter, "sentence_marks")
    assert f.measure(doc("서울이다. 부산인가? 대구다! 광주…。")) == 3
    assert f.measure(doc("1.5와 2.5, 그리고 ?!")) == 4
    assert f.filter(doc("하나. 둘!")) == (False, "sentence_marks")
    assert f.filter(doc("하나. 둘! 셋?")) is True


def test_hangul_ratio_counts_only_complete_syllables():
    f = _rule_filter(HangulRatioFilter, "hangul_ratio")
    assert f.measure(doc("가나abc")) == pytest.approx(2 / 5)
    assert f.measure(doc("ㅋㅋㅋ가")) == pytest.approx(1 / 4)  # jamo are not [가-힣]
    assert f.filter(doc("가나abc")) is True  # 0.4 is inside [0.4, ∞)
    assert f.filter(doc("가abcd")) == (False, "hangul_ratio")


def test_symbol_ratio_spares_only_space_newline_and_tab():
    f = _rule_filter(SymbolRatioFilter, "symbol_ratio")
    assert f.measure(doc("가 나\n다\t라")) == 0
    assert f.measure(doc("가★나!!")) == pytest.approx(3 / 5)
    assert f.measure(doc("가\r\n나")) == pytest.approx(1 / 4)  # \r is a symbol
    assert f.measure(doc("가\u3000나")) == pytest.approx(1 / 3)  # so is the ideographic space
    assert f.filter(doc("가나다라마바★★★")) == (False, "symbol_ratio")
    assert f.filter(doc("가나다라마바사★★★")) is True  # exactly 0.3 is inside [0, 0.3]
    assert f.measure(doc("a_b")) == pytest.approx(1 / 3)  # "_" is no letter, though regex's \w


def test_symbol_runs_regex_is_exactly_not_isalnum():
    r"""The symbol rule counts runs of `[^\w \n\t]` plus "_": that equals "not str.isalnum()"
    only if `\w` is exactly isalnum() or "_" for every code point, in this Python."""
    import re
    import sys

    word = re.compile(r"\w")
    differ = [
        cp
        for cp in range(sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF and bool(word.match(chr(cp))) != (chr(cp).isalnum() or chr(cp) == "_")
    ]
    assert differ == []


def _tokens(*spec: tuple[str, str]) -> list[Tok]:
    out, pos = [], 0
    for form, tag in spec:
        out.append(Tok(form, tag, pos, len(form)))
        pos += len(form) + 1
    return out


def test_nnp_ratio_pronoun_and_repeated_entity_measures_on_known_tokens():
    d = doc("x")
    d.tokens = _tokens(
        ("서울", "NNP"), ("은", "JX"), ("도시", "NNG"), ("이", "VCP"), ("다", "EF"),
        ("서울", "NNP"), ("의", "JKG"), ("강", "NNG"), ("한강", "NNP"), ("그", "NP"),
    )  # fmt: skip
    assert _rule_filter(NNPRatioFilter, "nnp_ratio").measure(d) == pytest.approx(3 / 10)
    assert _rule_filter(NNPRatioFilter, "nnp_ratio").filter(d) == (False, "nnp_ratio")
    assert _rule_filter(PronounFilter, "pronoun").measure(d) == 1
    assert _rule_filter(PronounFilter, "pronoun").filter(d) == (False, "pronoun")
    repeated = _rule_filter(RepeatedEntityFilter, "no_repeated_entity")
    assert repeated.measure(d) == 1
    assert d.entities == {"서울": [(0, 2), (12, 14)]}
    d.tokens = _tokens(("서울", "NNP"), ("부산", "NNP"), ("대구", "NNP"))
    assert repeated.filter(d) == (False, "no_repeated_entity")
    assert d.metrics == {"nnp_ratio": pytest.approx(0.3), "pronoun": 1, "no_repeated_entity": 0}


def test_kiwi_rules_on_crafted_korean(kiwi):
    def measure(cls, name: str, text: str) -> float:
        d = doc(text)
        d.tokens = kiwi.tokenize(text)
        return _rule_filter(cls, name).measure(d)

    assert measure(PronounFilter, "pronoun", "그녀는 우리에게 이것을 주었다.") >= 3
    assert measure(PronounFilter, "pronoun", "김도윤은 춘천에서 학교를 세웠다.") == 0
    ratio = measure(NNPRatioFilter, "nnp_ratio", "김도윤은 춘천에서 학교를 세웠다.")
    assert 0.1 < ratio < 0.5  # 김도윤, 춘천 are NNP among about ten tokens
    assert measure(NNPRatioFilter, "nnp_ratio", "학생들은 나무로 의자를 만든다.") == 0
    entities = measure(RepeatedEntityFilter, "no_repeated_entity", "춘천은 호반의 도시이다. 춘천에는 소양강이 흐른다.")
    assert entities == 1


class RecordingAnalyser:
    """Stands in for Kiwi: returns given tokens and records what it was asked to analyse."""

    def __init__(self, tokens_for: dict[str, list[Tok] | Exception]) -> None:
        self.tokens_for = tokens_for
        self.seen: list[str] = []

    def __call__(self, texts: list[str]):
        self.seen.extend(texts)
        for text in texts:
            yield self.tokens_for[text]


def test_filter_chain_runs_cheap_rules_first_and_kiwi_only_on_survivors():
    body = "김도윤은 춘천에서 목공 학교를 세웠다. " * 40  # 880 characters, 40 marks
    good = body[:850]
    # NNP ratio 2/10 = 0.2, the upper bound (inclusive).
    names = _tokens(("김도윤", "NNP"), ("은", "JX"), ("학교", "NNG"), ("를", "JKO"), ("세우", "VV"),
                    ("었", "EP"), ("다", "EF"), (".", "SF"), ("김도윤", "NNP"), ("은", "JX"))  # fmt: skip
    with_pronoun = names[:1] + [Tok("그", "NP", 4, 1)] + names[2:]
    docs = [
        doc("서울은 짧다.", "short"),
        doc("Seoul is a city. " * 60, "english"),
        doc("김도윤 춘천 " * 130, "no_marks"),
        doc(("★" * 8 + "가나다라마바사아자차. ") * 50, "symbols"),
        doc(good, "good"),
        doc(good[:849] + "!", "pronoun"),
        doc(good[:848] + "?!", "broken"),
        Document(doc_id="malformed", text=None, source="x", line=9, rejected_by="not_json"),
    ]
    analyser = RecordingAnalyser({good: names, good[:849] + "!": with_pronoun, good[:848] + "?!": RuntimeError("x")})
    chain = FilterChain(preset("seed-v2"))
    assert [f.name for f in chain.cheap] == ["length", "sentence_marks", "hangul_ratio", "symbol_ratio", "too_long"]
    assert [f.name for f in chain.analysed] == ["nnp_ratio", "pronoun", "no_repeated_entity"]
    kept = list(chain.run(docs, analyser))

    assert analyser.seen == [good, good[:849] + "!", good[:848] + "?!"]  # cheap rejections never reach Kiwi
    assert {d.doc_id: d.rejected_by for d in docs} == {
        "short": "length",
        "english": "hangul_ratio",
        "no_marks": "sentence_marks",
        "symbols": "symbol_ratio",
        "good": None,
        "pronoun": "pronoun",
        "broken": "analysis_error",
        "malformed": "not_json",
    }
    assert [d.doc_id for d in kept] == ["good"]
    assert kept[0].entities == {"김도윤": [(0, 3), (20, 23)]}
    assert kept[0].tokens is None  # the analysis is freed once used
    assert "hangul_ratio" not in docs[0].metrics  # a rejected document is not measured further
    assert (chain.analysed_docs, chain.analysed_chars) == (3, 3 * 850)


def test_a_disabled_rule_is_not_applied():
    config = Config.from_dict({"rules": {"pronoun": False, "length": {"max": 20000}}})
    text = "김도윤은 춘천에서 목공 학교를 세웠다. " * 100
    tokens = _tokens(("김도윤", "NNP"), ("그", "NP"), ("학교", "NNG"), ("를", "JKO"), ("세우", "VV"),
                     ("었", "EP"), ("다", "EF"), (".", "SF"), ("김도윤", "NNP"), ("은", "JX"))  # fmt: skip
    kept = list(FilterChain(config).run([doc(text)], RecordingAnalyser({text: tokens})))
    assert len(kept) == 1 and "pronoun" not in kept[0].metrics


# The sample's designed rejections (by the tail of `u`); every other document is kept.
SAMPLE_REJECTIONS = {
    "포항_날씨": "length",
    "세종_도서관_휴관": "length",
    "1042": "length",
    "단양_패러글라이딩": "length",
    "보성_녹차_마을_연혁": "length",
    "가을_강가에서": "sentence_marks",
    "Millbrook_Ferry": "hangul_ratio",
    "kettle-care": "hangul_ratio",
    "특가": "symbol_ratio",
    "된장찌개": "nnp_ratio",
    "전국_일주_경로": "nnp_ratio",
    "남해_여행": "pronoun",
    "배은하_(작가)": "pronoun",
    "골목길": "pronoun",
    "전국_날씨_정리": "no_repeated_entity",
}


def test_the_sample_through_seed_v2_with_kiwi(kiwi, sample_lines):
    docs = read_all([str(SAMPLE)], 1000)
    tail = {line["id"]: line["u"].rsplit("/", 1)[-1] for line in sample_lines}
    # Whole-document analysis, the rules in the config's order (test_progressive_analysis.py
    # runs the sample progressively: the same kept documents, pronoun reported first).
    kept = list(FilterChain(preset("seed-v2"), progressive=False).run(docs, kiwi_analyser(kiwi)))
    decisions = {tail[d.doc_id]: d.rejected_by for d in docs}
    assert {t: r for t, r in decisions.items() if r is not None} == SAMPLE_REJECTIONS
    assert len(kept) == 25
    assert set(SEED_V2_RULES) == set(SAMPLE_REJECTIONS.values())  # every rule rejects something
    config = preset("seed-v2").entities
    candidates = [c for d in kept for c in build_candidates(d.doc_id, d.entities, config)]
    assert len(candidates) > 100
    text = {d.doc_id: d.text for d in kept}
    for c in candidates:
        assert text[c.doc_id][c.start : c.end] == c.target == text[c.doc_id][c.antecedent_start : c.antecedent_end]
        assert 10 <= c.distance <= 2000
