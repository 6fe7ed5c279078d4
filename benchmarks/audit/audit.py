"""The meaning audit of a finished run (issue 33): a fixed sample to grade by hand, and scans of every row.

    python benchmarks/audit/audit.py sample RUN_DIR [--n 40] [--seed 33]   # rows with context, to grade
    python benchmarks/audit/audit.py scan RUN_DIR --model TOKENIZER_DIR     # figures over every row

RUN_DIR is a finished `dask-prep run` output directory (its `_work/candidates` parts hold the
documents' texts). The scan's methods are in benchmarks/audit/README.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
from collections import Counter
from typing import Any

import datasets
import pyarrow.parquet as pq

from dask_prep.config import NAME_HEADS

# Titles, ranks, kinds of things and other common nouns that Kiwi tags NNP now and then: the
# issue's examples, and those found reading the shared corpus's targets (benchmarks/audit/README.md).
COMMON_NOUNS = frozenset(
    """클래스 경부보 해치백 태그팀 워터파크 아이돌 공랭 내무대신 공산당 세인트 아시안 인터내셔널 타워 파크
    아카데미 리그 컵 클럽 시티 유나이티드 오픈 그랑프리 챔피언십 월드컵 올림픽 대통령 총리 국왕 황제 왕비 태자
    대신 장관 의원 시장 교수 박사 감독 선수 장군 대장 중장 소장 대령 중령 소령 대위 중위 소위 경감 경위 경부
    백작 후작 공작 남작 자작 대주교 주교 추기경 교황 목사 신부 승려 스님 선사 대사 공사 영사 도지사 군수 구청장
    드라마 앨범 싱글 밴드 그룹 레이블 시즌 에피소드 시리즈 게임 콘솔 엔진 버전 모델 세단 쿠페 왜건 트럭 버스
    지하철 고속도로 국도 철도 노선 역 공항 항구 다리 대교 터널 빌딩 호텔 병원 대학 대학교 고등학교 중학교
    초등학교 학교 교회 성당 사찰 사원 궁전 궁 성 요새 왕국 제국 공화국 연방 왕조 정부 의회 국회 법원 군 해군
    육군 공군 경찰 정당 여당 야당 노동당 자유당 민주당 보수당 왕당파 게릴라 테러 전쟁 전투 혁명 조약 협정
    헌법 선거 총선 대선 회담 사건 운동 축제 박람회 엑스포 시상식 영화제 페스티벌 인디 록 힙합 재즈 팝 발라드
    트로트 랩 댄스 미디어 방송 라디오 텔레비전 신문 잡지 인터넷 웹 소프트웨어 하드웨어 컴퓨터 스마트폰 로봇""".split()
)


def _texts(run_dir: str) -> dict[str, str]:
    texts = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "_work", "candidates", "*.parquet"))):
        table = pq.read_table(path, columns=["doc_id", "text"])
        texts.update(zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist(), strict=True))
    return texts


def _rows(run_dir: str) -> datasets.Dataset:
    saved = glob.glob(os.path.join(run_dir, "entity_coref_v2_*"))[0]
    loaded = datasets.load_from_disk(saved)
    if isinstance(loaded, datasets.DatasetDict):
        return datasets.concatenate_datasets(list(loaded.values()))
    return loaded


def _context(text: str, start: int, end: int, width: int = 45) -> str:
    left = text[max(0, start - width) : start].replace("\n", "⏎")
    right = text[end : end + width].replace("\n", "⏎")
    return f"…{left}【{text[start:end]}】{right}…"


def sample(run_dir: str, n: int, seed: int) -> None:
    rows, texts = _rows(run_dir), _texts(run_dir)
    picked = sorted(random.Random(seed).sample(range(rows.num_rows), min(n, rows.num_rows)))
    print(f"# {run_dir}: {rows.num_rows:,} rows; sample of {len(picked)} (seed {seed})\n")
    for number, index in enumerate(picked, 1):
        row = rows[index]
        text = texts[row["doc_id"]]
        size = len(row["target"])
        print(f"{number:>2}. row {index} doc {row['doc_id']} target {row['target']!r} distance {row['distance']}")
        print(f"    antecedent: {_context(text, row['antecedent_pos'], row['antecedent_pos'] + size)}")
        print(f"    masked:     {_context(text, row['coref_pos'], row['coref_pos'] + size)}")
        print(f"    free copies in input_ids: {free_copies(row)}\n")


def free_copies(row: dict[str, Any]) -> int:
    """Occurrences of the target's token sequence in input_ids outside the antecedent span."""
    ids, target = row["input_ids"], row["target_ids"]
    k, lo, hi = len(target), row["antecedent_start"], row["antecedent_end"]
    # A match overlapping the antecedent span is the antecedent (a "▁" piece may hold none of it).
    return sum(1 for i in range(len(ids) - k + 1) if ids[i : i + k] == target and not (i < hi and i + k > lo))


def _words_around(text: str, start: int, end: int) -> tuple[str, str]:
    """The whitespace-separated word before the span (if only a space separates them) and the one after."""
    before = ""
    if start >= 2 and text[start - 1] == " " and not text[start - 2].isspace():
        before = text[: start - 1].split()[-1] if text[: start - 1].split() else ""
    after = ""
    if end < len(text) - 1 and text[end] == " " and not text[end + 1].isspace():
        after = text[end + 1 :].split()[0] if text[end + 1 :].split() else ""
    return before, after


def _fragment_at(kiwi: Any, text: str, start: int, end: int) -> str | None:
    """Why the mention at [start, end) is part of a longer name, or None (see README.md)."""
    before, after = _words_around(text, start, end)
    if before:
        tags = [t.tag for t in kiwi.tokenize(before)]
        if (
            tags
            and all(tag in ("NNP", "SL", "SN", "SW", "SS", "SSO", "SSC") for tag in tags)
            and "NNP" in tags + ["SL"]
        ):
            if tags[-1] in ("NNP", "SL") and before[-1].isalnum():
                return "after a name word"
    if after:
        tokens = kiwi.tokenize(after)
        if tokens and tokens[0].start == 0:
            first = tokens[0].tag
            if first in ("SN", "NR", "SL", "NNP"):
                return f"before {first}"
            if first == "NNG" and _bare_noun(tokens):
                return "before a name head" if tokens[0].form in NAME_HEADS else "before another noun"
    return None


def _bare_noun(tokens: list[Any]) -> bool:
    # A following word that is nouns only, or nouns and a particle: it continues the name.
    tags = [t.tag for t in tokens]
    while tags and (tags[-1].startswith("J") or tags[-1] in ("SF", "SP", "SSC", "SE", "SO", "SW")):
        tags.pop()
    return bool(tags) and all(tag in ("NNG", "NNP", "SN", "SL", "XSN") for tag in tags)


def scan(run_dir: str, model: str, out: str | None) -> dict[str, Any]:
    from kiwipiepy import Kiwi
    from transformers import AutoTokenizer

    kiwi = Kiwi()
    tokenizer = AutoTokenizer.from_pretrained(model)
    real_max = tokenizer.model_max_length
    rows, texts = _rows(run_dir), _texts(run_dir)
    fragments, commons, copies, echoes, over, modifiers = Counter(), Counter(), 0, 0, 0, 0
    examples: dict[str, list[str]] = {"fragment": [], "common": []}
    for row in rows:
        text, target = texts[row["doc_id"]], row["target"]
        why = None
        for pos in (row["antecedent_pos"], row["coref_pos"]):
            why = why or _fragment_at(kiwi, text, pos, pos + len(target))
        if why == "before another noun":  # `일본 정부`: a name modifying a noun, not a fragment
            modifiers += 1
        elif why:
            fragments[why] += 1
            examples["fragment"].append(f"{target} ({why})")
        elif target in COMMON_NOUNS:
            commons[target] += 1
            examples["common"].append(target)
        copies += free_copies(row) > 0
        between = text[row["antecedent_pos"] + len(target) : row["coref_pos"]]
        echoes += "\n" in between and len(between) < 40
        over += len(row["input_ids"]) > real_max
    n = rows.num_rows
    result = {
        "run": os.path.basename(os.path.normpath(run_dir)),
        "rows": n,
        "fragment_rows": sum(fragments.values()),
        "fragment_reasons": dict(fragments),
        "name_before_another_noun_rows": modifiers,
        "common_noun_rows": sum(commons.values()),
        "common_nouns": dict(commons.most_common()),
        "fragment_or_common_share": round((sum(fragments.values()) + sum(commons.values())) / max(n, 1), 4),
        "free_copy_rows": copies,
        "free_copy_share": round(copies / max(n, 1), 4),
        "title_echo_rows": echoes,
        "rows_over_model_max_length": over,
        "model_max_length": real_max,
        "fragment_examples": Counter(examples["fragment"]).most_common(40),
    }
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=40)
    s.add_argument("--seed", type=int, default=33)
    c = sub.add_parser("scan")
    c.add_argument("run_dir")
    c.add_argument("--model", required=True)
    c.add_argument("--out")
    args = parser.parse_args(argv)
    if args.command == "sample":
        sample(args.run_dir, args.n, args.seed)
    else:
        scan(args.run_dir, args.model, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
