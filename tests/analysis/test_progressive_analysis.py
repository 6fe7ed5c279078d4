"""Progressive analysis (issue 21): chunk ends, early verdicts, the whole-document end.

Plain functions and `FilterChain` on made-up and real Korean text, with a real Kiwi or a
stand-in analyser whose tags are known; no cluster. The whole-corpus comparison of the
default run with `--full-analysis` is in test_progressive_corpus.py.
"""

from __future__ import annotations

import re
from collections import Counter, namedtuple

import pyarrow.parquet as pq
import pytest
from support.data import needs_shared

from dask_prep.analysis.filters import (
    PRONOUN_HINT,
    FilterChain,
    analysis_mode,
    describe_distribution,
    kiwi_analyser,
    measured_distributions,
    merge_distributions,
)
from dask_prep.analysis.progressive import PREFIX, WHOLE, ProgressStats, analyse_progressively, next_chunk_end
from dask_prep.cli.args import build_parser, config_from_args
from dask_prep.config import Config, preset
from dask_prep.document import Document
from dask_prep.io.reading import plan_partitions, resolve_inputs, scan_file
from dask_prep.output.layout import Layout
from dask_prep.pipeline.decisions import ANALYSIS_MODE_KEY
from dask_prep.pipeline.partition import analyse_partition

Tok = namedtuple("Tok", "form tag start len")

FILLER = "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. "  # no pronoun, ~30 chars
SHE = "그녀는 서울에서 태어났다. "


def fake_tokens(text: str) -> list[Tok]:
    """Whitespace words; 그녀는 is an NP + particle, every other word an NNP or NNG."""
    out = []
    for m in re.finditer(r"\S+", text):
        word = m.group()
        if word.startswith("그녀"):
            out.append(Tok("그녀", "NP", m.start(), 2))
        else:
            out.append(Tok(word, "NNP" if word.startswith("서울") else "NNG", m.start(), len(word)))
    return out


class Recorder:
    """An analyser that records every call (one list of texts per call)."""

    def __init__(self, tokens=fake_tokens, fail_on: set[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.tokens = tokens
        self.fail_on = fail_on

    def __call__(self, texts: list[str]):
        self.calls.append(list(texts))
        return [RuntimeError("fails") if t in self.fail_on else self.tokens(t) for t in texts]

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


def recording_kiwi(kiwi, seen: list[str]):
    """The chain's analyser over a real Kiwi, recording every text it is given in `seen`."""
    analyse = kiwi_analyser(kiwi)

    def recording(texts):
        seen.extend(texts)
        return analyse(texts)

    return recording


def seed_without_cheap_rules() -> Config:
    """seed-v2's analysis rules alone, so made-up text reaches Kiwi whatever its length."""
    config = preset("seed-v2")
    for name in ("length", "sentence_marks", "hangul_ratio", "symbol_ratio"):
        config.rules[name].enabled = False
    config.rules["nnp_ratio"].enabled = False  # the stand-in tags decide nothing meaningful here
    return config


def doc(text: str, doc_id: str = "d") -> Document:
    return Document(doc_id=doc_id, text=text, source="made", line=1)


# ---- where chunks end -------------------------------------------------------------------


def test_chunk_ends_at_the_sentence_end_after_the_first_likely_pronoun():
    text = FILLER * 2 + "한강은 길다. 그는 한강을 좋아했다. 다음 문장이다. " + FILLER * 3
    end = next_chunk_end(text, 0, [PRONOUN_HINT])
    assert text[:end].endswith("그는 한강을 좋아했다.")
    # the next chunk starts there and, with no likely pronoun left, there is none: whole
    assert next_chunk_end(text, end, [PRONOUN_HINT]) is None


def test_no_likely_pronoun_means_the_whole_document_at_once():
    assert next_chunk_end(FILLER * 20, 0, [PRONOUN_HINT]) is None
    # a chunk that would reach the end of the text is the whole text
    assert next_chunk_end(FILLER * 5 + "그는 왔다. ", 0, [PRONOUN_HINT]) is None


def test_chunk_is_bounded_and_ends_at_a_line_end_or_sentence_end():
    text = FILLER * 40 + "그는 왔다. " + FILLER * 5
    end = next_chunk_end(text, 0, [PRONOUN_HINT], max_chunk=100)
    assert 100 <= end <= 100 + len(FILLER) and text[end - 1] == "."
    lines = "첫 줄 제목\n" + "둘째 줄에는 마침표가 없음\n" * 30 + "그는 왔다\n" + "끝 줄\n" * 30
    end = next_chunk_end(lines, 0, [PRONOUN_HINT])
    assert lines[:end].endswith("그는 왔다\n")
    # a hint of None (a rule without one) bounds the chunk by size alone
    end = next_chunk_end(FILLER * 40, 0, [None], max_chunk=100)
    assert end is not None and 100 <= end <= 100 + len(FILLER)


def test_pronoun_hint_finds_pronouns_not_look_alike_words():
    found = [
        m.group() for m in PRONOUN_HINT.finditer("그는 이를 보았다. 그녀의 책. 우리 집. 그 후 이름 저녁 나무 그리고")
    ]
    assert found == ["그는", "이를", "그녀의", "우리"]


# ---- verdicts -----------------------------------------------------------------------------


def test_rejected_at_the_first_chunk_real_kiwi(kiwi_one):
    text = "그는 서울에서 태어났다. " + "서울은 대한민국의 수도이다. 한강은 서울을 가로질러 흐른다. " * 40
    d = doc(text)
    seen: list[str] = []
    recording = recording_kiwi(kiwi_one, seen)
    config = seed_without_cheap_rules()
    chain = FilterChain(config)
    assert chain.progressive and [f.name for f in chain.judging_order][0] == "pronoun"
    assert list(chain.run([d], recording)) == []
    assert d.rejected_by == "pronoun" and d.analysis == PREFIX
    assert seen == ["그는 서울에서 태어났다. "[:-1]]  # the first sentence only
    assert d.kiwi_chars == len(seen[0]) and chain.progress.kiwi_chars == len(seen[0])
    assert d.metrics["pronoun"] == 1
    assert "no_repeated_entity" not in d.metrics  # not measured: null in the decisions
    assert chain.progress.stopped_early == 1


def test_pronoun_in_the_last_chunk_real_kiwi(kiwi_one):
    """The only pronoun is in the last sentence: chunks (bounded in size) without one, then the
    whole-document analysis finds it, as full analysis does."""
    body = "서울은 대한민국의 수도이다. 한강은 서울을 가로질러 흐른다. " * 30
    text = body + "마지막으로 그녀는 한강을 보았다."
    d = doc(text)
    seen: list[str] = []
    recording = recording_kiwi(kiwi_one, seen)
    chain = FilterChain(seed_without_cheap_rules())
    assert list(chain.run([d], recording)) == []
    assert d.rejected_by == "pronoun" and d.analysis == WHOLE
    chunks, last = seen[:-1], seen[-1]
    assert len(chunks) >= 2 and text.startswith("".join(chunks)) and "그녀" not in "".join(chunks)
    assert last == text  # the end is one whole-document analysis
    assert d.kiwi_chars == sum(map(len, seen))
    full = doc(text)
    list(FilterChain(seed_without_cheap_rules(), progressive=False).run([full], kiwi_analyser(kiwi_one)))
    assert full.rejected_by == "pronoun" and full.metrics["pronoun"] == d.metrics["pronoun"]


def test_pronoun_in_the_last_chunk_after_chunks_without_one():
    """Chunks whose likely pronouns are not pronouns (stand-in tags), then the one that is."""
    text = ("우리는 " + FILLER * 3) * 3 + FILLER + "끝에서 " + SHE + FILLER
    d = doc(text)
    analyse = Recorder()
    chain = FilterChain(seed_without_cheap_rules())
    assert list(chain.run([d], analyse)) == []
    assert d.rejected_by == "pronoun"
    pieces = analyse.texts
    assert len(pieces) >= 3
    assert pieces[-1].endswith(SHE.strip()) and text.startswith("".join(pieces))  # consecutive chunks
    assert d.analysis == PREFIX and d.kiwi_chars == len("".join(pieces)) < len(text)


def test_survivor_gets_exactly_the_whole_document_analysis():
    text = ("우리는 " + FILLER * 3) * 3 + "서울 서울 " + FILLER
    progressive, full = doc(text), doc(text)
    analyse = Recorder()
    kept = list(FilterChain(seed_without_cheap_rules()).run([progressive], analyse))
    assert kept == [progressive] and progressive.analysis == WHOLE
    assert analyse.texts[-1] == text  # the last analysis is the whole document
    assert progressive.kiwi_chars == sum(map(len, analyse.texts)) > len(text)
    list(FilterChain(seed_without_cheap_rules(), progressive=False).run([full], Recorder()))
    assert progressive.entities == full.entities and progressive.metrics == full.metrics


def test_a_chunk_kiwi_cannot_analyse_sends_the_whole_document():
    text = ("우리는 " + FILLER * 3) * 3 + FILLER
    first = next_chunk_end(text, 0, [PRONOUN_HINT])
    d = doc(text)
    analyse = Recorder(fail_on={text[:first]})
    list(FilterChain(seed_without_cheap_rules()).run([d], analyse))
    assert analyse.texts == [text[:first], text]  # as full mode would: the whole decides
    assert d.rejected_by is None and d.analysis == WHOLE and d.entities


def test_batches_are_rounds_of_every_undecided_document():
    early = doc("그녀는 왔다. " + FILLER * 20, "early")
    later = doc(("우리는 " + FILLER * 3) * 4 + FILLER, "later")
    none = doc(FILLER * 20, "none")
    analyse = Recorder()
    chain = FilterChain(seed_without_cheap_rules())
    list(chain.run([early, later, none], analyse))
    # round 1: first chunks of the two with a likely pronoun and the third whole
    assert analyse.calls[0] == ["그녀는 왔다.", analyse.calls[0][1], none.text]
    assert later.text.startswith(analyse.calls[0][1])
    assert all(len(call) == 1 for call in analyse.calls[1:])  # then only `later` is left
    assert analyse.calls[-1] == [later.text]
    assert (early.analysis, later.analysis, none.analysis) == (PREFIX, WHOLE, WHOLE)


def test_full_analysis_sends_whole_texts_once():
    docs = [doc("그녀는 왔다. " + FILLER * 20, "a"), doc(FILLER * 20, "b")]
    analyse = Recorder()
    chain = FilterChain(seed_without_cheap_rules(), progressive=False)
    list(chain.run(docs, analyse))
    assert analyse.calls == [[d.text for d in docs]]
    assert chain.mode == "full" and all(d.analysis == WHOLE for d in docs)


def test_progressive_only_where_a_rule_can_decide_early():
    assert analysis_mode(preset("seed-v2")) == "progressive"
    config = preset("seed-v2")
    config.rules["pronoun"].enabled = False
    assert analysis_mode(config) == "full" and not FilterChain(config).progressive
    config = preset("seed-v2")
    config.analysis.progressive = False
    assert analysis_mode(config) == "full"


def test_analyse_progressively_stats_add_up():
    docs = [doc("그녀는 왔다. " + FILLER * 20, "a"), doc(FILLER * 20, "b")]
    stats = ProgressStats()
    rule = FilterChain(seed_without_cheap_rules()).early
    out = list(analyse_progressively(docs, rule, Recorder(), stats))
    assert [d.doc_id for d, _ in out] == ["b"]
    assert stats.stopped_early == 1 and stats.kiwi_chars == len("그녀는 왔다.") + len(docs[1].text)


@pytest.mark.parametrize("progressive", [True, False])
def test_progress_counts_documents_decided_early_and_whole_in_both_modes(progressive):
    """on_progress sees every document judged, early rejections included, never going back."""
    docs = [doc("그녀는 왔다. " + FILLER * 20, "early"), doc(FILLER * 20, "whole"), doc("서울 서울 " + FILLER, "kept")]
    seen: list[tuple[int, int]] = []
    chain = FilterChain(seed_without_cheap_rules(), progressive=progressive)
    kept = list(chain.run(docs, Recorder(), lambda judged, kept: seen.append((judged, kept))))
    judged = [j for j, _ in seen]
    assert judged == sorted(judged) and seen[0] == (0, 0), seen
    # before the last document's verdict, every other one has been counted
    assert judged[-1] == len(docs) - 1 and seen[-1][1] <= len(kept), seen


# ---- config, CLI, report values ------------------------------------------------------------


def test_full_analysis_flag_and_config():
    args = build_parser().parse_args(["run", "x.jsonl", "--output-dir", "o", "--full-analysis"])
    assert config_from_args(args).analysis.progressive is False
    args = build_parser().parse_args(["run", "x.jsonl", "--output-dir", "o"])
    assert config_from_args(args).analysis.progressive is True
    config = Config.from_dict({"analysis": {"progressive": False}})
    assert config.analysis.progressive is False
    assert Config.from_dict(preset("seed-v2").to_dict()).analysis.progressive is True


def test_distributions_count_values_on_a_prefix_and_not_measured():
    config = seed_without_cheap_rules()
    docs = [doc("그녀는 왔다. " + FILLER * 20, "a"), doc("서울 서울 " + FILLER * 20, "b")]
    list(FilterChain(config).run(docs, Recorder()))
    dists = merge_distributions([measured_distributions(docs[:1], config), measured_distributions(docs[1:], config)])
    pronoun, entity = describe_distribution(dists["pronoun"]), describe_distribution(dists["no_repeated_entity"])
    assert (pronoun["measured"], pronoun["measured_on_prefix"], pronoun["above_max"]) == (2, 1, 1)
    assert (entity["measured"], entity["not_measured_stopped_early"]) == (1, 1)


@needs_shared
@pytest.mark.parametrize("kiwi_threads", [1, 2], ids=["one-by-one", "batch"])
def test_partition_same_kept_documents_as_full_analysis(shard0, tmp_path, kiwi_threads):
    """A real partition with a real Kiwi, one by one and in batch: same candidates, same kept
    documents; decisions differ only where a pronoun document also failed nnp_ratio; every
    document's Kiwi texts are consecutive chunks of it and at most one whole analysis."""
    from kiwipiepy import Kiwi

    real = Kiwi(num_workers=kiwi_threads)
    seen: list[str] = []

    class RecordingKiwi:  # the real Kiwi, recording every text it is given
        num_workers = kiwi_threads

        def tokenize(self, texts, **kwargs):
            if isinstance(texts, str):
                seen.append(texts)
                return real.tokenize(texts, **kwargs)
            texts = list(texts)
            seen.extend(texts)
            return real.tokenize(texts, **kwargs)

    kiwi = RecordingKiwi()
    config = preset("seed-v2")
    config.input.dedup = False
    (file,) = resolve_inputs([str(shard0)])
    (spec,) = plan_partitions([file], [300], 300)
    out = {}
    texts_seen = {}
    for mode in ("progressive", "full"):
        config.analysis.progressive = mode == "progressive"
        layout = Layout(str(tmp_path / mode))
        seen.clear()
        stats = analyse_partition(spec, config, layout, kiwi=kiwi)
        texts_seen[mode] = list(seen)
        table = pq.read_table(layout.part("decisions", spec.index))
        assert table.schema.metadata[ANALYSIS_MODE_KEY] == mode.encode()
        candidates = pq.read_table(layout.part("candidates", spec.index)).to_pylist()
        out[mode] = (stats, table.to_pylist(), candidates)
    (p_stats, p_rows, p_cands), (f_stats, f_rows, f_cands) = out["progressive"], out["full"]
    assert p_cands == f_cands and len(p_cands) > 0
    assert p_stats.analysed_chars == f_stats.analysed_chars == f_stats.kiwi_chars
    assert p_stats.kiwi_chars < f_stats.kiwi_chars and p_stats.stopped_early > 0
    for p, f in zip(p_rows, f_rows, strict=True):
        assert p["doc_id"] == f["doc_id"]
        if p["rejected_by"] != f["rejected_by"]:
            assert (f["rejected_by"], p["rejected_by"]) == ("nnp_ratio", "pronoun"), p["doc_id"]
        if p["analysis"] == PREFIX:
            assert p["rejected_by"] == "pronoun" and p["nnp_ratio"] is None and p["kiwi_chars"] < p["chars"]
        if p["rejected_by"] is None:
            assert p["analysis"] == WHOLE and p == {**f, "kiwi_chars": p["kiwi_chars"]}
    assert sum(r["kiwi_chars"] or 0 for r in p_rows) == p_stats.kiwi_chars == sum(map(len, texts_seen["progressive"]))
    # at most one whole-document analysis per document; every other text is a piece of one
    wholes = Counter(texts_seen["full"])
    assert max(wholes.values()) == 1
    whole_again = Counter(t for t in texts_seen["progressive"] if t in wholes)
    assert max(whole_again.values()) == 1
    assert sum(whole_again.values()) == sum(r["analysis"] == WHOLE for r in p_rows)
    pieces = [t for t in texts_seen["progressive"] if t not in wholes]
    assert len(pieces) > 0 and all(any(piece in whole for whole in wholes) for piece in pieces)


def test_too_long_text_never_reaches_kiwi_in_progressive_analysis():
    run_on = ("그는한국어문장이끝없이이어집니다." * 10_000)[:100_001]
    config = seed_without_cheap_rules()
    docs = [doc(run_on, "long"), doc("그녀는 왔다. " + FILLER * 20, "short")]
    analyse = Recorder()
    list(FilterChain(config).run(docs, analyse))
    assert docs[0].rejected_by == "too_long" and docs[0].analysis is None and docs[0].kiwi_chars == 0
    assert analyse.texts == ["그녀는 왔다."]


@pytest.fixture(scope="module")
def kiwi_one():
    from kiwipiepy import Kiwi

    return Kiwi(num_workers=1)


def test_kept_documents_come_in_input_order():
    """A document that needs several rounds is still yielded before a later one kept in round 1."""
    later = doc(("우리는 " + FILLER * 3) * 4 + FILLER, "several rounds")
    first_round = doc(FILLER * 20, "one round")
    kept = list(FilterChain(seed_without_cheap_rules()).run([later, first_round], Recorder()))
    assert [d.doc_id for d in kept] == ["several rounds", "one round"]


def test_repo_sample_same_kept_documents_as_full_analysis(kiwi_one):
    """The repo's own sample (no ../shared needed): progressive and full analysis keep the
    same documents with the same entities; only nnp_ratio -> pronoun moves in the decisions."""
    from pathlib import Path

    from dask_prep.io.reading import read_partition

    sample = Path(__file__).resolve().parents[2] / "sample" / "ko_sample.jsonl"
    (file,) = resolve_inputs([str(sample)])
    (spec,) = plan_partitions([file], [scan_file(file).records], 1000)
    out = {}
    for progressive in (True, False):
        docs, _ = read_partition(spec, "text", "id")
        chain = FilterChain(preset("seed-v2"), progressive=progressive)
        kept = {d.doc_id: d.entities for d in chain.run(docs, kiwi_analyser(kiwi_one))}
        out[progressive] = (kept, {d.doc_id: d.rejected_by for d in docs}, chain.progress)
    (p_kept, p_decisions, p_stats), (f_kept, f_decisions, _) = out[True], out[False]
    assert p_kept == f_kept and len(p_kept) > 10
    moved = {(f_decisions[d], p_decisions[d]) for d in f_decisions if f_decisions[d] != p_decisions[d]}
    assert moved <= {("nnp_ratio", "pronoun")}
    assert p_stats.stopped_early > 0
