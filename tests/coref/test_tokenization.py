"""Unit tests of dask_prep.coref.tokenization with the repo's own tokenizer (sample/tokenizer).

Masking, windowing and padding of an example, and how the tokenizer is loaded. No cluster,
no ../shared.
"""

from __future__ import annotations

import pytest
from support.data import SAMPLE_TOKENIZER

from dask_prep.config import TokenizeConfig
from dask_prep.coref.entities import Candidate

FILLER = "학생들은 매일 아침 나무를 다듬고 가구를 만든다. "
TEXT = (
    "박서연은 춘천의 목공 학교를 졸업했다. "
    + FILLER * 3
    + "박서연은 교장이 되었다. "
    + FILLER * 12
    + "마지막으로 박서연은 벤치 사업을 시작했다."
)
P0 = TEXT.find("박서연")
P1 = TEXT.find("박서연", P0 + 1)
P2 = TEXT.find("박서연", P1 + 1)
NEAR = Candidate("doc-1", "박서연", P0, P0 + 3, P1, P1 + 3, 1)
FAR = Candidate("doc-1", "박서연", P0, P0 + 3, P2, P2 + 3, 2)


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(SAMPLE_TOKENIZER))


def _encode(candidates, **options) -> tuple[list[dict], dict[str, int], object]:
    from dask_prep.coref.tokenization import ExampleTokenizer

    encoder = ExampleTokenizer(TokenizeConfig(model=str(SAMPLE_TOKENIZER), **options))
    dropped: dict[str, int] = {}
    rows = []
    for batch in encoder.encode([(TEXT, c) for c in candidates], dropped):
        assert batch.schema == encoder.schema
        rows.extend(batch.to_pylist())
    return rows, dropped, encoder


def _masked(c: Candidate, n_masks: int) -> str:
    """The mention and every other copy of the target but the antecedent masked (issue 33)."""
    head, tail = TEXT[: c.antecedent_end], TEXT[c.antecedent_end :]
    return head + tail.replace(c.target, "[MASK]" * n_masks)


def _check_example(row: dict, hf, c: Candidate, seq_len: int) -> None:
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) <= seq_len
    assert len(labels) == len(ids) == len(row["attention_mask"]) == len(row["token_type_ids"])
    assert ids[0] == hf.cls_token_id and ids[-1] == hf.sep_token_id
    assert set(ids[row["mask_start"] : row["mask_end"]]) == {hf.mask_token_id}
    k = row["mask_end"] - row["mask_start"]
    # The masks are the mention's and those of the other copies in the window, all labelled.
    masked = sorted(i for start in [row["mask_start"], *row["masked_copies"]] for i in range(start, start + k))
    assert [i for i, v in enumerate(ids) if v == hf.mask_token_id] == masked
    assert [i for i, v in enumerate(labels) if v != -100] == masked
    for start in row["masked_copies"]:
        assert labels[start : start + k] == labels[row["mask_start"] : row["mask_end"]]
    antecedent = hf.decode(ids[row["antecedent_start"] : row["antecedent_end"]]).replace(" ", "")
    assert c.target in antecedent
    assert (row["doc_id"], row["target"]) == (c.doc_id, c.target)
    assert (row["antecedent_pos"], row["coref_pos"], row["distance"]) == (c.antecedent_start, c.start, c.distance)


def test_whole_mask_style_gives_k_masks_labelled_with_the_target_ids(hf):
    target_ids = hf("박서연", add_special_tokens=False)["input_ids"]
    assert len(target_ids) == 2  # a two-token target, so whole and single differ
    [row], dropped, _ = _encode([NEAR], seq_len=512)
    assert dropped == {}
    _check_example(row, hf, NEAR, 512)
    assert row["input_ids"] == hf(_masked(NEAR, 2))["input_ids"]  # the document fits: no window
    assert row["mask_end"] - row["mask_start"] == 2
    assert row["labels"][row["mask_start"] : row["mask_end"]] == target_ids == row["target_ids"]
    assert row["attention_mask"] == [1] * len(row["input_ids"])  # not padded by default
    assert row["token_type_ids"] == [0] * len(row["input_ids"])


def test_single_mask_style_gives_one_mask_labelled_with_the_first_id(hf):
    target_ids = hf("박서연", add_special_tokens=False)["input_ids"]
    [row], dropped, _ = _encode([NEAR], seq_len=512, mask_style="single")
    assert dropped == {}
    _check_example(row, hf, NEAR, 512)
    assert row["input_ids"] == hf(_masked(NEAR, 1))["input_ids"]
    assert row["mask_end"] - row["mask_start"] == 1
    assert row["labels"][row["mask_start"]] == target_ids[0]
    assert row["target_ids"] == target_ids


def test_windowing_keeps_both_spans_or_drops_with_reason_window(hf):
    seq_len = 64
    full = hf(_masked(NEAR, 2))["input_ids"]
    assert len(full) > 3 * seq_len  # the document does not fit: a window is needed
    rows, dropped, encoder = _encode([NEAR, FAR], seq_len=seq_len)
    assert dropped == {"window": 1}  # FAR's two mentions are further apart than a window
    [row] = rows
    assert row["coref_pos"] == P1
    _check_example(row, hf, NEAR, seq_len)
    assert len(row["input_ids"]) == seq_len
    content = row["input_ids"][1:-1]
    starts = [i for i in range(len(full)) if full[i : i + len(content)] == content]
    assert starts, "the window is a contiguous piece of the whole document"
    assert encoder.content_len == seq_len - 2


def test_padding_gives_the_old_layout(hf):
    seq_len = 512
    [row], _, _ = _encode([NEAR], seq_len=seq_len, mask_style="single", pad_to_max_length=True)
    reference = hf(_masked(NEAR, 1), truncation=True, padding="max_length", max_length=seq_len)
    assert row["input_ids"] == reference["input_ids"]
    assert row["attention_mask"] == reference["attention_mask"]
    assert row["token_type_ids"] == reference["token_type_ids"]
    n = sum(row["attention_mask"])
    assert row["attention_mask"] == [1] * n + [0] * (seq_len - n)
    assert row["input_ids"][n:] == [hf.pad_token_id] * (seq_len - n)
    assert row["labels"][n:] == [-100] * (seq_len - n)
    assert row["labels"][row["mask_start"]] == hf("박서연", add_special_tokens=False)["input_ids"][0]


def test_a_directory_without_a_tokenizer_is_a_clear_error(tmp_path):
    from dask_prep.coref.tokenizer import TokenizerError, load_tokenizer

    with pytest.raises(TokenizerError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path))


def test_tokenizer_is_loaded_once_per_process_and_the_portable_one_encodes_the_same():
    from dask_prep.coref.tokenizer import PortableTokenizer, load_tokenizer

    model = str(SAMPLE_TOKENIZER)
    hf = load_tokenizer(model)
    assert load_tokenizer(model) is hf  # cached: the report and the check do not reload it
    portable = PortableTokenizer.load(model)
    assert PortableTokenizer.load(model).backend() is portable.backend()
    texts = [f"서울은 대한민국의 수도이다. {hf.mask_token}는 한강을 끼고 있다.", "세종대왕은 한글을 만들었다."]
    expected = hf(texts, return_offsets_mapping=True)
    encodings = portable.backend().encode_batch(texts, add_special_tokens=True)
    assert [e.ids for e in encodings] == expected["input_ids"]
    assert [e.offsets for e in encodings] == [[tuple(o) for o in offs] for offs in expected["offset_mapping"]]
    assert portable.mask_token_id == hf.mask_token_id and portable.unk_token_id == hf.unk_token_id


def test_tokenizer_loads_one_thread_at_a_time(monkeypatch):
    """Two task threads of one worker must not import transformers at the same time."""
    import threading
    import time

    from dask_prep.coref import tokenizer as tokenizer_loading

    inside, most = 0, 0
    guard = threading.Lock()

    def slow_load(model: str) -> str:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with guard:
            inside -= 1
        return model

    monkeypatch.setattr(tokenizer_loading, "_load_tokenizer", slow_load)
    start = threading.Barrier(4)

    def load() -> None:
        start.wait()
        tokenizer_loading.load_tokenizer("m")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
