"""Issue 22: training-grade examples.

Surface-exact targets, whole-word mentions, exact antecedent spans, the document-level
validation split, the dataset card and the tokenizer's coverage in the report.

Unit tests use hand-written Korean sentences with real Kiwi and need no cluster; the
tokenizer tests also build a SentencePiece-style (Unigram, Metaspace) and a byte-level BPE
tokenizer here, from the repository's sample, so that the span rules are checked on
tokenizers whose offsets include the space before a word and split characters into bytes.
The integration tests run the whole shared corpus with `validation_fraction 0.05` in
partitions of 200 and 2000, and the speeches, and check every row.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from support.data import seed_config_with

from dask_prep.config import Config, ConfigError, EntityConfig, TokenizeConfig, preset
from dask_prep.coref.entities import (
    build_candidates,
    find_example_entities,
    may_follow_head,
    whole_word_mentions,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample" / "ko_sample.jsonl"
SAMPLE_TOKENIZER = REPO / "sample" / "tokenizer"


@pytest.fixture(scope="module")
def kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def mentions(kiwi, text: str) -> list[tuple[str, int]]:
    return [(text[s:e], s) for s, e in whole_word_mentions(text, kiwi.tokenize(text))]


# ---- whole-word mentions on hand-written sentences --------------------------------------


def test_a_particle_after_the_entity_is_not_part_of_it(kiwi):
    text = "잉글랜드의 왕은 잉글랜드에 산다. 잉글랜드는 섬에 있다."
    assert mentions(kiwi, text) == [("잉글랜드", 0), ("잉글랜드", 9), ("잉글랜드", 19)]
    entities = find_example_entities(text, kiwi.tokenize(text), EntityConfig())
    assert entities == {"잉글랜드": [(0, 4), (9, 13), (19, 23)]}


def test_a_compound_whose_head_is_another_noun_gives_no_mention(kiwi):
    # Kiwi: 경북/NNP 무진/NNG - 경북 is not the head of 경북무진 (another referent).
    text = "경북무진은 경북에 있다. 경북무진의 본사는 경북에 있다."
    assert mentions(kiwi, text) == [("경북", 6), ("경북", 24)]
    # The previous behaviour, still available, took the NNP inside the compound too.
    legacy = find_example_entities(text, kiwi.tokenize(text), EntityConfig(mentions="nnp"))
    assert legacy["경북"][0] == (0, 2)
    assert find_example_entities(text, kiwi.tokenize(text), EntityConfig()) == {"경북": [(6, 8), (24, 26)]}


def test_a_match_in_the_middle_of_a_word_is_not_a_mention(kiwi):
    # 소/NNG 세어도/NNP: 세어도 inside 소세어도 is another island.
    text = "소세어도와 세어도는 섬이다."
    assert mentions(kiwi, text) == [("세어도", 6)]
    # 민주/NNP 공화당/NNP written together are one mention, not 공화당 inside it.
    text = "민주공화당과 공화당은 다르다."
    assert mentions(kiwi, text) == [("민주공화당", 0), ("공화당", 7)]


def test_a_multi_word_proper_noun_without_its_space_keeps_the_text(kiwi):
    # Kiwi's form is '토마스 쿡 그룹' (with spaces); the target is what the text says.
    text = "토마스쿡 그룹이 파산했다. 그 뒤 토마스쿡 그룹의 호텔이 팔렸다."
    tokens = kiwi.tokenize(text)
    assert any(t.form == "토마스 쿡 그룹" for t in tokens)
    assert find_example_entities(text, tokens, EntityConfig()) == {"토마스쿡 그룹": [(0, 7), (19, 26)]}
    # The old behaviour grouped by Kiwi's form, which the text does not spell.
    assert set(find_example_entities(text, tokens, EntityConfig(mentions="nnp"))) == {"토마스 쿡 그룹"}
    assert mentions(kiwi, "존시나는 레슬러다.") == [("존시나", 0)]
    assert mentions(kiwi, "JR서일본의 열차") == [("JR서일본", 0)]


def test_a_number_or_latin_letters_after_the_name_make_a_longer_word(kiwi):
    assert mentions(kiwi, "앙리4세가 즉위했다.") == []  # 앙리/NNP 4/SN
    assert mentions(kiwi, "《아랑전설》 시리즈") == [("아랑전설", 1)]  # punctuation starts a word


class Tok:
    def __init__(self, form: str, tag: str, start: int, length: int | None = None) -> None:
        self.form, self.tag, self.start = form, tag, start
        self.len = len(form) if length is None else length


FOLLOWERS_OK = ["JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX", "JC", "EP", "EF", "EC", "ETN", "ETM"]
FOLLOWERS_OK += ["VCP", "VCN", "XSV", "XSA", "XSM", "SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB"]
# (An NNP right after an NNP joins it: one mention, see the runs test below.)
FOLLOWERS_BLOCKING = ["NNG", "NNB", "NR", "NP", "SL", "SH", "SN", "XSN", "XPN", "XR", "MM", "MAG", "MAJ"]
FOLLOWERS_BLOCKING += ["IC", "VV", "VA", "VX", "VV-R", "VA-I", "UN", "W_URL", "W_SERIAL", "Z_SIOT", "Z_CODA"]


@pytest.mark.parametrize("tag", FOLLOWERS_OK)
def test_particles_endings_copula_and_punctuation_may_follow_the_head(tag):
    assert may_follow_head(tag)
    text = "서울X 서울"
    assert whole_word_mentions(text, [Tok("서울", "NNP", 0), Tok("X", tag, 2), Tok("서울", "NNP", 4)]) == [
        (0, 2),
        (4, 6),
    ]


@pytest.mark.parametrize("tag", FOLLOWERS_BLOCKING)
def test_nouns_numbers_foreign_words_and_noun_suffixes_make_it_not_the_head(tag):
    assert not may_follow_head(tag)
    text = "서울X 서울"
    assert whole_word_mentions(text, [Tok("서울", "NNP", 0), Tok("X", tag, 2), Tok("서울", "NNP", 4)]) == [(4, 6)]


def test_word_starts_and_runs_of_proper_nouns():
    # A run of NNPs without a gap is one mention; a gap (space) ends it.
    text = "김 철수 김철수는"
    tokens = [
        Tok("김", "NNP", 0),
        Tok("철수", "NNP", 2),
        Tok("김", "NNP", 5),
        Tok("철수", "NNP", 6),
        Tok("는", "JX", 8),
    ]
    assert whole_word_mentions(text, tokens) == [(0, 1), (2, 4), (5, 8)]
    # After a digit or a letter Kiwi gave no morpheme for, a name is inside a word.
    assert whole_word_mentions("3서울 a서울", [Tok("서울", "NNP", 1), Tok("서울", "NNP", 5)]) == []
    assert whole_word_mentions("서울x", [Tok("서울", "NNP", 0)]) == []


def test_targets_are_the_text_and_grouped_by_it():
    text = "JR서일본은 JR서일본의"
    tokens = [Tok("JR 서일본", "NNP", 0, 5), Tok("은", "JX", 5), Tok("JR 서일본", "NNP", 7, 5), Tok("의", "JKG", 12)]
    entities = find_example_entities(text, tokens, EntityConfig())
    assert entities == {"JR서일본": [(0, 5), (7, 12)]}
    candidates = build_candidates("d", entities, EntityConfig(min_distance=1))
    for c in candidates:
        assert text[c.start : c.end] == c.target == text[c.antecedent_start : c.antecedent_end]
    # Stop entities and the minimum length apply to the surface string.
    assert find_example_entities(text, tokens, EntityConfig(stop_entities=["JR서일본"])) == {}


def test_kept_documents_do_not_depend_on_the_mention_rule(kiwi):
    """The rule `no_repeated_entity` judges with NNP forms whatever `entities.mentions` says."""
    from dask_prep.analysis.filters import FilterChain, kiwi_analyser
    from dask_prep.coref.kept_analysis import decode_tokens
    from dask_prep.coref.names import example_entities
    from dask_prep.document import Document

    docs = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]

    def judge(mentions: str) -> tuple[dict, list]:
        config = preset("seed-v2")
        config.entities.mentions = mentions
        documents = [Document(doc_id=d["id"], text=d["text"], source="s", line=i) for i, d in enumerate(docs)]
        kept = list(FilterChain(config).run(documents, kiwi_analyser(kiwi)))
        return {d.doc_id: d.rejected_by for d in documents}, kept

    def examples(d: Document, mentions: str) -> dict:
        """The entity step's example entities, from the tokens stage 1 stores (as `run` and `derive` read them)."""
        config = preset("seed-v2").entities
        config.mentions = mentions
        return example_entities(d.text, decode_tokens(d.text, d.kept_tokens), config)

    new, kept_new = judge("whole_word")
    old, kept_old = judge("nnp")
    assert new == old
    assert [d.entities for d in kept_new] == [d.entities for d in kept_old]
    assert [examples(d, "nnp") for d in kept_old] == [d.entities for d in kept_old]
    assert any(examples(d, "whole_word") != d.entities for d in kept_new)
    for d in kept_new:
        for surface, spans in examples(d, "whole_word").items():
            assert all(d.text[s:e] == surface for s, e in spans)


# ---- exact antecedent spans --------------------------------------------------------------


def test_antecedent_span_is_exact_or_flagged():
    from dask_prep.coref.tokenization import antecedent_span

    def span(text, offsets, first, last):
        return antecedent_span(text, offsets, [s for s, _ in offsets], [e for _, e in offsets], first, last)

    text = "그는 잉글랜드의 왕"
    wordpiece = [(0, 1), (1, 2), (3, 7), (7, 8), (9, 10)]  # 그 ##는 잉글랜드 ##의 왕
    assert span(text, wordpiece, 3, 7) == (2, 3, True)
    joined = [(0, 1), (1, 2), (3, 8), (9, 10)]  # 잉글랜드의 as one token
    assert span(text, joined, 3, 7) == (2, 3, False)
    metaspace = [(0, 1), (1, 2), (2, 7), (7, 8), (8, 10)]  # ▁잉글랜드 includes the space
    assert span(text, metaspace, 3, 7) == (2, 3, True)
    byte_level = [(0, 1), (1, 2), (2, 4), (3, 4), (4, 5), (5, 7), (7, 8), (8, 10)]  # bytes of 잉 in two tokens
    assert span(text, byte_level, 3, 7) == (2, 6, True)
    straddling_bytes = [(0, 1), (1, 2), (2, 4), (4, 6), (6, 8), (8, 10)]  # 드 and 의 share a token
    assert span(text, straddling_bytes, 3, 7) == (2, 5, False)
    assert span(text, [(0, 1), (8, 10)], 3, 7) is None


def _trained_tokenizer(kind: str, directory: Path) -> Path:
    """A small tokenizer of another family, trained here on the sample, saved as HF files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    if kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=4000, special_tokens=specials, unk_token="<unk>")
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=800, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
    )
    path = directory / kind
    fast.save_pretrained(str(path))
    return path


def check_rows(rows: list[dict], texts: dict[str, str], tokenizer) -> None:
    """Issue 22's properties of every row; `texts` are the documents' texts."""
    assert rows, "no rows to check"
    for r in rows:
        where = (r["doc_id"], r["target"], r["coref_pos"])
        text, target = texts[r["doc_id"]], r["target"]
        a, c = r["antecedent_pos"], r["coref_pos"]
        assert text[a : a + len(target)] == target == text[c : c + len(target)], where
        for pos in (a, c):  # no mention starts inside a word
            assert pos == 0 or not text[pos - 1].isalnum(), where
        ids = r["input_ids"]
        decoded = tokenizer.decode(ids[r["antecedent_start"] : r["antecedent_end"]])
        assert decoded.replace(" ", "").replace("##", "") == target.replace(" ", ""), (where, decoded)
        ms, me = r["mask_start"], r["mask_end"]
        assert ids[ms:me] == [tokenizer.mask_token_id] * (me - ms), where
        # Besides the mention, only the other copies of the target are masked (issue 33), labelled alike.
        masked = sorted(i for start in [ms, *r["masked_copies"]] for i in range(start, start + me - ms))
        assert [i for i, v in enumerate(ids) if v == tokenizer.mask_token_id] == masked, where
        assert [i for i, v in enumerate(r["labels"]) if v != -100] == masked, where
        assert r["target_ids"] == tokenizer(target, add_special_tokens=False)["input_ids"], where
        assert r["labels"][ms:me] == r["target_ids"], where
        for start in r["masked_copies"]:
            assert r["labels"][start : start + me - ms] == r["labels"][ms:me], where
        # No free copy: the target's token sequence is nowhere in the input but at the antecedent
        # (which it may overlap only partly: a SentencePiece "▁" token holds no character of it).
        k, lo, hi = len(r["target_ids"]), r["antecedent_start"], r["antecedent_end"]
        free = [i for i in range(len(ids) - k + 1) if ids[i : i + k] == r["target_ids"] and not (i < hi and i + k > lo)]
        assert free == [], (where, free)


@pytest.fixture(scope="module")
def sample_candidates(kiwi):
    from dask_prep.analysis.filters import FilterChain, kiwi_analyser
    from dask_prep.coref.kept_analysis import decode_tokens, document_entities
    from dask_prep.document import Document

    config = preset("seed-v2")
    docs = [
        Document(doc_id=d["id"], text=d["text"], source="s", line=i)
        for i, d in enumerate(json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines())
    ]
    kept = list(FilterChain(config).run(docs, kiwi_analyser(kiwi)))
    # The candidates of the entity step, from the tokens stage 1 stores (as `run` and `derive` make them).
    pairs = [
        (d.text, c)
        for d in kept
        for c in document_entities(d.doc_id, d.text, decode_tokens(d.text, d.kept_tokens), config.entities).candidates
    ]
    assert len(pairs) > 50
    return pairs, {d.doc_id: d.text for d in kept}


@pytest.mark.parametrize("kind", ["wordpiece", "unigram", "byte_level_bpe"])
def test_every_example_is_exact_with_tokenizers_of_every_family(kind, sample_candidates, tmp_path):
    from transformers import AutoTokenizer

    from dask_prep.coref.tokenization import ExampleTokenizer

    model = SAMPLE_TOKENIZER if kind == "wordpiece" else _trained_tokenizer(kind, tmp_path)
    pairs, texts = sample_candidates
    encoder = ExampleTokenizer(TokenizeConfig(model=str(model), seq_len=256))
    dropped: dict[str, int] = {}
    rows = [row for batch in encoder.encode(pairs, dropped) for row in batch.to_pylist()]
    assert len(rows) + sum(dropped.values()) == len(pairs)
    print(f"\n{kind}: {len(rows)} of {len(pairs)} examples, dropped {dropped}")
    check_rows(rows, texts, AutoTokenizer.from_pretrained(str(model)))
    assert len(rows) > len(pairs) // 2
    coverage = encoder.coverage()
    assert coverage["tokens"] > 0 and coverage["unknown_tokens"] <= coverage["tokens"]


def test_a_piece_joining_the_antecedent_to_its_particle_drops_the_example(tmp_path):
    """WordPiece with 서울에서 in its vocabulary: the antecedent 서울 cannot be marked alone."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from dask_prep.coref.entities import Candidate
    from dask_prep.coref.tokenization import ExampleTokenizer

    vocab = {
        t: i
        for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "서울", "서울에서", "##에", "는", "."])
    }
    vocab.update({"살": 10, "##았다": 11, "##서": 12, "부산": 13})
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    path = tmp_path / "wp"
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]",
    ).save_pretrained(str(path))  # fmt: skip
    text = "서울에서 살았다. 서울에서 살았다. 부산에서 살았다. 서울에 살았다."
    joined = Candidate("d", "서울", 0, 2, 10, 12, 1)  # antecedent 서울에서: one token
    encoder = ExampleTokenizer(TokenizeConfig(model=str(path), seq_len=64))
    dropped: dict[str, int] = {}
    assert [r for b in encoder.encode([(text, joined)], dropped) for r in b.to_pylist()] == []
    assert dropped == {"boundary": 1}
    # The masked mention may be joined to its particle in the text: the mask replaces it.
    text2 = "서울에 살았다. 서울에서 살았다."
    exact = Candidate("d", "서울", 0, 2, 9, 11, 2)  # antecedent 서울 ##에
    dropped = {}
    [row] = [r for b in encoder.encode([(text2, exact)], dropped) for r in b.to_pylist()]
    assert dropped == {}
    assert row["input_ids"][row["antecedent_start"] : row["antecedent_end"]] == [vocab["서울"]]


def test_a_tokenizer_without_offsets_is_a_clear_error(monkeypatch, tmp_path):
    import transformers

    from dask_prep.coref import tokenizer as tokenizer_loading

    class Slow:
        is_fast = False
        mask_token = "[MASK]"

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda *a, **k: Slow()))
    tokenizer_loading._load_tokenizer.cache_clear()
    try:
        with pytest.raises(tokenizer_loading.TokenizerError, match="no fast tokenizer"):
            tokenizer_loading.load_tokenizer(str(tmp_path))  # a local directory: no hub is asked
    finally:
        tokenizer_loading._load_tokenizer.cache_clear()


# ---- split, card, report, config ----------------------------------------------------------


def test_validation_split_is_a_stable_hash_of_the_document_id():
    from dask_prep.output.card import in_validation, validation_share

    ids = [f"doc-{i}" for i in range(20_000)]
    share = sum(in_validation(d, 0.05) for d in ids) / len(ids)
    assert 0.045 < share < 0.055
    assert [in_validation(f"doc-{i}", 0.05) for i in range(200)] == [
        validation_share(f"doc-{i}") < 0.05 for i in range(200)
    ]
    assert all(in_validation(d, 0.1) for d in ids if in_validation(d, 0.05))  # nested fractions


def test_validation_share_is_pinned():
    """The split must not change between releases, machines or Python processes."""
    from dask_prep.output.card import validation_share

    assert f"{validation_share('doc-1'):.12f}" == "0.369030111612"


def test_split_by_document_and_the_card():
    import datasets

    from dask_prep.output.card import in_validation, split_by_document

    doc_ids = sorted(f"doc-{i:03d}" for i in range(300) for _ in range(3))
    dataset = datasets.Dataset.from_dict({"doc_id": doc_ids, "coref_pos": list(range(len(doc_ids)))})
    splits = split_by_document(dataset, 0.1)
    train, validation = set(splits["train"]["doc_id"]), set(splits["validation"]["doc_id"])
    assert not train & validation and train | validation == set(doc_ids)
    assert validation == {d for d in doc_ids if in_validation(d, 0.1)}
    assert splits["train"].num_rows + splits["validation"].num_rows == len(doc_ids)


def test_card_is_a_hugging_face_card(tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    from dask_prep.output.card import card_text, split_stats

    dataset = datasets.Dataset.from_dict({"doc_id": ["a", "a", "b"], "coref_pos": [1, 2, 3]})
    dataset.save_to_disk(str(tmp_path / "ds"))
    stats = split_stats({"train": dataset}, str(tmp_path / "ds"), is_dict=False)
    assert stats["train"]["examples"] == 3 and stats["train"]["documents"] == 2 and stats["train"]["bytes"] > 0
    config = preset("seed-v2").to_dict()
    counts = {
        "documents": {"read": 5, "malformed": 0, "rejected": 3, "kept": 2, "kept_without_examples": 0},
        "examples": {"before_cap": 4, "after_cap": 4, "dropped": {"boundary": 1}, "written": 3},
        "tokenizer_coverage": {"unknown_share": 0.02},
    }
    text = card_text(
        features=dataset.features,
        splits=stats,
        name="entity_coref_v2_2048",
        command="dask-prep run x --output-dir y",
        config=config,
        counts=counts,
        tokenizer={"model": "m", "class": "BertTokenizerFast", "unk_token": "[UNK]"},
        versions={"datasets": "1"},
    )
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    card = DatasetCard.load(str(tmp_path / "README.md"))
    info = card.data.to_dict()["dataset_info"]
    assert [f["name"] for f in info["features"]] == ["doc_id", "coref_pos"]
    assert info["splits"] == [{"name": "train", "num_bytes": stats["train"]["bytes"], "num_examples": 3}]
    assert "dask-prep run x --output-dir y" in card.text and "boundary 1" in card.text
    assert "2.00%" in card.text


def test_coverage_adds_up_and_warns_above_one_percent():
    from dask_prep.report.build import coverage_warnings, tokenizer_coverage
    from dask_prep.stats import TokenizeStats

    stats = [
        TokenizeStats.from_json(s)
        for s in [
            {"coverage": {"tokens": 1000, "unknown_tokens": 5, "unknown_chars": {"《": 3, "丁": 1}}},
            {"coverage": {"tokens": 1000, "unknown_tokens": 10, "unknown_chars": {"《": 2}}},
            {"examples": 0},  # a partition reused from a run before coverage was counted
        ]
    ]
    coverage = tokenizer_coverage(stats)
    assert coverage["tokens"] == 2000 and coverage["unknown_tokens"] == 15
    assert coverage["unknown_share"] == 0.0075
    assert coverage["unknown_chars"][0] == {"char": "《", "codepoint": "U+300A", "count": 5}
    assert coverage_warnings(coverage) == []
    stats[1].coverage.unknown_tokens = 100
    [warning] = coverage_warnings(tokenizer_coverage(stats))
    assert "5.2%" in warning and "《" in warning and "\n" not in warning


def test_config_and_cli_options():
    from dask_prep.cli.args import build_parser, config_from_args

    assert preset("seed-v2").entities.mentions == "names"  # issue 33 (whole_word before)
    assert Config.from_dict({"entities": {"mentions": "whole_word"}}).entities.mentions == "whole_word"
    assert preset("seed-v2").output.validation_fraction is None
    assert Config.from_dict({"entities": {"mentions": "nnp"}}).entities.mentions == "nnp"
    with pytest.raises(ConfigError, match="entities.mentions"):
        Config.from_dict({"entities": {"mentions": "all"}})
    with pytest.raises(ConfigError, match="min_proper_share"):
        Config.from_dict({"entities": {"min_proper_share": 1.5}})
    for bad in (0, 1, 1.5, "x", True):
        with pytest.raises(ConfigError, match="validation_fraction"):
            Config.from_dict({"output": {"validation_fraction": bad}})
    args = build_parser().parse_args(["run", "x.jsonl", "--output-dir", "o", "--validation-fraction", "0.05"])
    assert config_from_args(args).output.validation_fraction == 0.05


# ---- real runs: the shared corpus with a validation split, the speeches -----------------


def _texts(run) -> dict[str, str]:
    return run.texts()


def _all_rows(run) -> list[dict]:
    import datasets

    loaded = run.dataset()
    if isinstance(loaded, datasets.DatasetDict):
        return [row for split in loaded.values() for row in split.to_list()]
    return loaded.to_list()


@pytest.fixture(scope="module")
def split_runs(pipeline_runner, tokenizer_dir, tmp_path_factory):
    """The whole shared corpus, `validation_fraction 0.05`, partitions of 200 and of 2000."""
    from support.data import CORPUS

    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    runs = {}
    for size in (200, 2000):
        config = seed_config_with(tokenizer_dir, output__validation_fraction=0.05, input__partition_size=size)
        runs[size] = pipeline_runner(
            sorted(CORPUS.glob("*.jsonl.zst")),
            config,
            tmp_path_factory.mktemp(f"split{size}_"),
            exact_partition_size=size,
        )
    return runs


@pytest.mark.slow  # the whole shared corpus
def test_split_is_by_document_and_the_same_for_any_partitioning(split_runs):
    import datasets

    from dask_prep.output.card import in_validation

    ids = {}
    for size, run in split_runs.items():
        loaded = run.dataset()
        assert isinstance(loaded, datasets.DatasetDict) and set(loaded) == {"train", "validation"}
        train, validation = set(loaded["train"]["doc_id"]), set(loaded["validation"]["doc_id"])
        assert not train & validation
        assert all(in_validation(d, 0.05) for d in validation) and not any(in_validation(d, 0.05) for d in train)
        share = len(validation) / len(train | validation)
        print(f"\npartitions of {size}: {len(validation)} of {len(train | validation)} documents in validation")
        assert 0.02 <= share <= 0.10, share
        report = run.report
        assert report["splits"]["validation"]["documents"] == len(validation)
        assert (
            report["splits"]["train"]["examples"] + report["splits"]["validation"]["examples"]
            == (report["examples"]["written"])
        )
        ids[size] = {name: split.to_list() for name, split in loaded.items()}
    assert split_runs[200].report["partitions"]["total"] > split_runs[2000].report["partitions"]["total"]
    assert ids[200] == ids[2000]


@pytest.mark.slow  # the whole shared corpus
def test_every_row_of_the_shared_corpus(split_runs, hf_tokenizer):
    run = split_runs[200]
    rows = _all_rows(run)
    check_rows(rows, _texts(run), hf_tokenizer)
    report = run.report
    assert report["examples"]["written"] == len(rows)
    kept_without = sum(1 for row in run.candidate_rows() if not row["candidates"])
    assert report["documents"]["kept_without_candidates"] == kept_without
    # Issue 33: "without an example" counts the kept documents that have no row at all.
    with_rows = len({r["doc_id"] for r in rows})
    assert report["documents"]["kept_without_examples"] == report["documents"]["kept"] - with_rows
    print(
        f"\nshared corpus: {report['documents']['kept']} kept documents, {report['examples']['before_cap']} "
        f"candidates, dropped {report['examples']['dropped']}, {len(rows)} examples; "
        f"unknown share {report['tokenizer_coverage']['unknown_share']:.2%}"
    )


@pytest.mark.slow  # the whole shared corpus
def test_unknown_share_in_the_report_is_the_examples(split_runs, hf_tokenizer):
    run = split_runs[200]
    special = set(hf_tokenizer.all_special_ids) - {hf_tokenizer.unk_token_id}  # [CLS], [SEP], masks, pads
    tokens = unknown = 0
    for row in _all_rows(run):
        tokens += sum(1 for t in row["input_ids"] if t not in special)
        unknown += row["input_ids"].count(hf_tokenizer.unk_token_id)
    coverage = run.report["tokenizer_coverage"]
    assert (coverage["tokens"], coverage["unknown_tokens"]) == (tokens, unknown)
    assert coverage["unknown_chars"] and all(
        hf_tokenizer(c["char"], add_special_tokens=False)["input_ids"] == [hf_tokenizer.unk_token_id]
        for c in coverage["unknown_chars"]
    )
    assert (coverage["unknown_share"] > 0.01) == bool(run.report["warnings"])
    html = (run.output_dir / "report.html").read_text(encoding="utf-8")
    assert "Tokenizer coverage" in html


@pytest.mark.slow  # the whole shared corpus
def test_the_card_is_there_and_datasets_reads_the_dataset(split_runs, seed_shard0_run):
    import datasets
    from huggingface_hub import DatasetCard

    run = split_runs[200]
    path = run.output_dir / "entity_coref_v2_2048"
    card = DatasetCard.load(str(path / "README.md"))
    info = card.data.to_dict()["dataset_info"]
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        name: sizes["examples"] for name, sizes in run.report["splits"].items()
    }
    loaded = datasets.load_from_disk(str(path))
    assert [f["name"] for f in info["features"]] == list(loaded["train"].features)
    assert loaded["train"].info.description.startswith("Entity-coreference examples")
    # Without a split: one Dataset as before, with its card.
    single = seed_shard0_run.dataset()
    assert isinstance(single, datasets.Dataset)
    assert single.info.description.startswith("Entity-coreference examples")
    assert (seed_shard0_run.output_dir / "entity_coref_v2_2048" / "README.md").is_file()


def test_every_row_of_shard0_with_defaults(seed_shard0_run, hf_tokenizer):
    check_rows(seed_shard0_run.rows(), seed_shard0_run.texts(), hf_tokenizer)


@pytest.fixture(scope="module")
def speeches_run(nk_windowed_run):
    """The speeches with the windowed test's config (nnp_ratio and pronoun off, 512 tokens)."""
    return nk_windowed_run


def test_every_row_of_the_speeches(speeches_run, hf_tokenizer):
    rows = speeches_run.rows()
    check_rows(rows, speeches_run.texts(), hf_tokenizer)
    dropped = Counter(speeches_run.report["examples"]["dropped"])
    print(f"\nspeeches: {len(rows)} examples, dropped {dict(dropped)}")


def test_kept_documents_without_an_example_are_counted(kiwi, tmp_path):
    """Stage 1 over the sample: a kept document whose mentions give no example is counted."""
    from dask_prep.io.reading import plan_partitions, resolve_inputs, scan_file
    from dask_prep.output.layout import Layout
    from dask_prep.pipeline.partition import analyse_partition

    files = resolve_inputs([str(SAMPLE)])
    [spec] = plan_partitions(files, [scan_file(f).records for f in files], 1000)
    config = preset("seed-v2")
    stats = analyse_partition(spec, config, Layout(str(tmp_path / "a")), kiwi=kiwi)
    assert stats.kept > 0 and stats.candidates > 0
    assert stats.kept_without_examples == 0
    assert stats.example_entities > 0
    # Mentions closer than any allowed distance: every kept document is left without one.
    config.entities.min_distance = config.entities.max_distance = 10**6
    stats = analyse_partition(spec, config, Layout(str(tmp_path / "b")), kiwi=kiwi)
    assert stats.candidates == 0
    assert stats.kept_without_examples == stats.kept > 0
