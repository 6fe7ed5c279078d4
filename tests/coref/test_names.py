"""Issue 33's rules on hand-written Korean sentences, with real Kiwi."""

from __future__ import annotations

import pytest

from dask_prep.config import EntityConfig
from dask_prep.coref.names import (
    copies_of,
    is_title_echo,
    merge_proper_counts,
    name_mentions,
    not_proper_targets,
    proper_counts,
    without_echoes,
)

kiwipiepy = pytest.importorskip("kiwipiepy", reason="the rules are defined on Kiwi's tags")


@pytest.fixture(scope="module")
def kiwi():
    from dask_prep.analysis.kiwi import build_kiwi

    return build_kiwi()


def names(kiwi, text: str) -> list[str]:
    return [text[a:b] for a, b in name_mentions(text, kiwi.tokenize(text), EntityConfig())]


def test_a_multi_word_name_is_one_mention(kiwi):
    assert names(kiwi, "퀸스 파크 레인저스는 잉글랜드의 축구 클럽이다.") == ["퀸스 파크 레인저스", "잉글랜드"]


def test_a_name_followed_by_a_numeral_or_a_name_head_is_part_of_the_longer_name(kiwi):
    # The console and the company are two targets; the war is one.
    assert names(kiwi, "닌텐도 64는 닌텐도가 만든 게임기이다.") == ["닌텐도 64", "닌텐도"]
    assert names(kiwi, "러일 전쟁 이후 일본은 강해졌다.") == ["러일 전쟁", "일본"]
    assert names(kiwi, "리오 레드우드 아카데미에 다녔다.") == ["리오 레드우드 아카데미"]
    assert names(kiwi, "나고야 TV 타워와 도쿄 타워") == ["나고야 TV 타워", "도쿄 타워"]
    assert names(kiwi, "리버풀 FC는 강하다.") == ["리버풀 FC"]


def test_a_name_then_bare_nouns_then_a_name_head_is_one_name(kiwi):
    assert names(kiwi, "한일 병합 조약이 체결되었다.") == ["한일 병합 조약"]
    assert names(kiwi, "박헌영 리승엽 간첩 사건에 연루되었다.") == ["박헌영 리승엽 간첩 사건"]
    # A head that modifies a further noun is a common noun there: the name stays a mention.
    assert names(kiwi, "매년 미국 국내 대학 순위를 발표한다.") == ["미국"]
    assert names(kiwi, "일본 정부 대변인이 말했다.") == ["일본"]


def test_a_name_after_a_compound_of_a_name_and_nouns_is_one_name_with_it(kiwi):
    # Kiwi reads 조선/NNP 총독부/NNG here: the council of the Government-General.
    assert names(kiwi, "그는 조선총독부 중추원 참의를 지냈다.") == ["조선총독부 중추원"]
    assert names(kiwi, "소련군 주코프 원수가 왔다.") == ["주코프"]  # 군/NNB: no name of a body


def test_a_name_inside_a_longer_title_or_quotation_is_no_mention(kiwi):
    assert names(kiwi, "《이스 온라인》을 서비스한다. 《이스》는 게임이다.") == ["이스 온라인", "이스"]
    assert names(kiwi, "출판사 '아캄 하우스'의 이름은 아캄에서 왔다.") == ["아캄"]
    # A quotation that the name neither opens nor closes is a sentence: its names are mentions.
    assert names(kiwi, "그는 “우리는 김근태 의장과 약속했다”고 말했다.") == ["김근태"]


def test_a_last_syllable_followed_by_a_particle_is_no_glued_particle(kiwi):
    # 황해도/NNP 에/JKB: 도 is the province's own syllable, not the particle 도.
    assert names(kiwi, "조선 시대에는 황해도에 속했다. 황해는 바다이다.") == ["조선", "황해도", "황해"]


def test_a_name_modifying_a_common_noun_stays_a_mention(kiwi):
    assert names(kiwi, "김정일 위원장이 평양에 갔다.")[0] == "김정일"


def test_ju_glued_to_a_country_is_no_mention(kiwi):
    found = names(kiwi, "주대한민국 미국 대사관은 대한민국 서울에 있다.")
    assert not any(n.startswith("주") for n in found)
    assert "대한민국 서울" in found


def test_a_title_echo_gives_no_example_but_later_mentions_do():
    text = "서병주\n서병주 ( 1885년 ) 는 조선의 관료이다. 그 뒤 서병주는 일본으로 갔다."
    first, echo, later = 0, text.index("서병주", 1), text.rindex("서병주")
    assert is_title_echo(text, first, first + 3, echo)
    assert not is_title_echo(text, first, first + 3, later)
    kept, echoes = without_echoes(text, {"서병주": [(first, 3), (echo, echo + 3), (later, later + 3)]})
    assert kept == {"서병주": [(first, 3), (later, later + 3)]} and echoes == 1


def test_a_common_noun_tagged_nnp_is_dropped_by_its_proper_share(kiwi):
    config = EntityConfig()
    # Kiwi tags the rank 경부보 NNP at the start of a sentence, NNG elsewhere.
    texts = ["경부보는 경찰 계급이다.", "그는 경부보로 승진했다.", "경부보가 되었다.", "일본은 섬나라이다."]
    counts = merge_proper_counts(proper_counts(t, kiwi.tokenize(t), config) for t in texts)
    assert counts["경부보"] == (1, 3)
    assert counts["일본"] == (1, 1)
    assert not_proper_targets(["경부보", "일본"], counts, config.min_proper_share) == {"경부보"}


def test_copies_are_the_other_word_starts():
    text = "부산은 크다. 부산광역시와 북부산, 그리고 부산."
    assert copies_of(text, "부산", [0]) == [text.index("부산광역시"), text.rindex("부산")]


def test_a_particle_glued_to_the_last_word_of_a_phrase_is_cut_off(kiwi):
    # Kiwi reads 이글스의/NNP here; 이글스 is a name of the text, so the particle is not the name's.
    text = "라쿠텐 이글스)의 본거지이다. 라쿠텐 이글스의 출범과 함께"
    assert names(kiwi, text)[-1] == "라쿠텐 이글스"
