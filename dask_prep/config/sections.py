"""The sections of a `Config`: rules, entities, tokenization, input, dedup, output, analysis.

`dask_prep.config` puts them together (and re-exports them); their fields are checked there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ConfigError(ValueError):
    """An invalid configuration: the message names the field and what is wrong."""


@dataclass
class Rule:
    """One quality rule: its measured value must lie in [min, max] (None = unbounded)."""

    enabled: bool = True
    min: float | None = None
    max: float | None = None


# Entities that are tagged NNP but are never useful coreference targets.
SEED_STOP_ENTITIES = ("것", "수", "등", "때", "곳", "점", "년", "월", "일")

# Nouns that, written after a name, make it part of a longer name (an institution, a place,
# an event, a work): README "What an example is".
NAME_HEADS = tuple(
    """대학 대학교 대학원 아카데미 학교 고등학교 중학교 초등학교 학원 연구소 전쟁 전투 사건 사변 조약 협정 혁명 봉기
    역 강 산 산맥 호 호수 섬 만 해협 반도 평야 폭포 운하 공항 항 대교 다리 터널 댐 타워 빌딩 호텔 병원 궁 성 교회
    성당 공원 광장 박물관 미술관 도서관 경기장 극장 유나이티드 시티 올림픽 위원회 철도 도시철도 선 호선 고속도로
    디나르 왕조 방송 신문 그룹 전자 자동차 은행 대회 컵 리그 구단 클럽 협회 연맹 재단 공사 회사 온라인 프로젝트
    시상식 영화제 박람회 엑스포 상 어워드""".split()
)


@dataclass
class EntityConfig:
    """How repeated entities are found and turned into coreference examples."""

    min_chars: int = 2
    min_mentions: int = 2
    stop_entities: list[str] = field(default_factory=lambda: list(SEED_STOP_ENTITIES))
    max_masked_mentions: int = 3
    min_distance: int = 10
    max_distance: int = 2000
    max_entity_freq: int | None = 1000
    # Which mentions become examples (the kept documents do not depend on it):
    # "whole_word": proper nouns heading a whole word, targets spelled as in the text;
    # "nnp": every NNP token, grouped by Kiwi's form (the behaviour before issue 22);
    # "names" (issue 33): whole name phrases (dask_prep.coref.names).
    mentions: str = "names"
    # Nouns that continue a name written before them (`오사카 대학`, `러일 전쟁`): a name
    # followed by one of them is part of a longer name, not a mention of its own.
    name_heads: list[str] = field(default_factory=lambda: list(NAME_HEADS))
    # Targets tagged a proper noun at fewer than this share of their whole-word occurrences
    # in the kept documents are dropped (`not_proper_noun`); 0 keeps every target.
    min_proper_share: float = 0.5
    # A file of targets never to use, one a line (added to stop_entities); None: none.
    stoplist_file: str | None = None


@dataclass
class TokenizeConfig:
    model: str = "kakaobank/kf-deberta-base"
    seq_len: int = 2048
    mask_style: str = "whole"  # "whole": k masks for a k-token target; "single": one mask
    pad_to_max_length: bool = False


@dataclass
class InputConfig:
    text_field: str = "text"
    id_field: str = "id"
    max_samples: int | None = None
    partition_size: int = 2000
    dedup: bool = True  # exact deduplication (NFKC, collapsed whitespace) before Kiwi
    # Seconds one document's Kiwi analysis may take; longer is a hang, and that document is
    # rejected as `analysis_timeout` (dask_prep.analysis.isolation).
    analysis_timeout: float = 300.0


@dataclass
class NearDedupConfig:
    """Near-duplicates by MinHash LSH (dask_prep/dedup/near.py), aiming at Jaccard >= 0.8.

    Shingles are character `ngram`-grams of the normalised text; `bands` x `rows` MinHash
    values (one-permutation, `dedup.minhash.signature`); two documents sharing a band's values
    are candidates (20 x 5: 99.96 % of pairs at Jaccard 0.8, 47 % at 0.5), kept as near-copies
    when their signatures' estimated Jaccard is at least `threshold` (0: no verification).
    """

    enabled: bool = True
    threshold: float = 0.7
    ngram: int = 5
    bands: int = 20
    rows: int = 5


@dataclass
class DedupConfig:
    near: NearDedupConfig = field(default_factory=NearDedupConfig)


@dataclass
class OutputConfig:
    decisions: bool = True  # one row per input document under DIR/decisions/
    # Share of documents (by a stable hash of doc_id) whose examples go to a `validation`
    # split; None: one `Dataset`, no split.
    validation_fraction: float | None = None
    # For the dataset card: where the text comes from and its licence (SPDX id or words).
    source: str | None = None
    license: str | None = None


@dataclass
class AnalysisConfig:
    # Analyse chunk by chunk while a rule can still decide early (dask_prep/analysis/progressive.py);
    # false (`--full-analysis`) analyses every candidate whole. The dataset is the same.
    progressive: bool = True
