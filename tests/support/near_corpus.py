"""A corpus with known near-copies (issue 31), built from real Korean documents of shard 00000.

Originals, near-copies of four kinds (boilerplate added, truncated, one sentence replaced,
characters edited) and hard negatives of two kinds (a shared template, half the sentences
shared). `constructed` returns the texts and the kind of each constructed pair.
"""

from __future__ import annotations

import random
import re
from pathlib import Path


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def constructed(shard0: Path) -> tuple[list[str], dict[tuple[int, int], str]]:
    """Originals, near-copies of four kinds, hard negatives of two kinds: (texts, kinds of pairs)."""
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

    files = resolve_inputs([str(shard0)])
    docs, _ = read_partition(plan_partitions(files, [scan_file(files[0]).records], 3000)[0], "text", "id")
    pool = [d.text for d in docs if d.text and 800 <= len(d.text) <= 3000 and len(_sentences(d.text)) >= 8]
    rng = random.Random(31)
    rng.shuffle(pool)
    texts: list[str] = []
    kinds: dict[tuple[int, int], str] = {}

    def add(text: str) -> int:
        texts.append(text)
        return len(texts) - 1

    boiler = "본 기사는 무단 전재 및 재배포를 금지합니다. 구독 신청은 홈페이지에서 하실 수 있습니다."
    template = " ".join(_sentences(pool[-1])[:6])  # a shared header and footer for the negatives
    fillers = pool[-40:-1]
    for i, text in enumerate(pool[:200]):
        original = add(text)
        kind = ("boilerplate", "truncated", "sentence", "characters")[i % 4]
        if kind == "boilerplate":
            copy = "[뉴스] " + text + " " + boiler
        elif kind == "truncated":
            copy = text[: int(len(text) * 0.9)]
        elif kind == "sentence":
            parts = _sentences(text)
            parts[len(parts) // 2] = _sentences(fillers[i % len(fillers)])[0]
            copy = " ".join(parts)
        else:
            chars = list(text)
            for at in rng.sample(range(len(chars)), max(1, len(chars) // 200)):
                chars[at] = "가"
            copy = "".join(chars)
        kinds[(original, add(copy))] = kind
    for i, text in enumerate(pool[200:300]):  # hard negatives
        other = pool[300 + i]
        if i % 2:
            first, second = add(template + " " + text[:600]), add(template + " " + other[:600])
            kinds[(first, second)] = "template"
        else:
            a, b = _sentences(text), _sentences(other)
            half = len(a) // 2
            first, second = add(" ".join(a)), add(" ".join(a[:half] + b[: len(a) - half]))
            kinds[(first, second)] = "half"
    return texts, kinds
