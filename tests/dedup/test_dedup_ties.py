"""Issue 24: dedup keeps exactly one copy of each text, whatever the ids; repeated ids are reported."""

from __future__ import annotations

import json

import pytest


def _doc(doc_id: str, text: str, source: str, line: int):
    from dask_prep.document import Document

    return Document(doc_id=doc_id, text=text, source=source, line=line)


def test_equal_ids_in_two_files_keep_one_copy():
    from dask_prep.dedup.exact import fingerprints, first_of_repeated, mark_duplicates

    docs = [_doc("7", "같은 글", "b.jsonl", 1), _doc("7", "같은 글", "a.jsonl", 3), _doc("7", "같은  글", "a.jsonl", 9)]
    pairs = fingerprints(docs)
    fp = pairs[0][0]
    assert {key for key, _ in pairs} == {fp}  # one text, three copies (one spaced differently)
    keep = dict([first_of_repeated((fp, pairs))])
    assert keep[fp] == ("7", "a.jsonl", 3)
    mark_duplicates(docs, keep)
    assert [d.rejected_by for d in docs] == ["duplicate", None, "duplicate"]


def test_repeated_ids_are_counted_with_their_first_locations():
    from dask_prep.dedup.exact import fingerprint, merge_repeated_ids, repeated_id, summarize_repeated_ids

    same = [(fingerprint("글"), ("x", "b.jsonl", 2)), (fingerprint("글"), ("x", "a.jsonl", 5))]
    other = [(fingerprint("하나"), ("y", "a.jsonl", 1)), (fingerprint("둘"), ("y", "a.jsonl", 8))]
    assert repeated_id(("z", [(1, ("z", "a.jsonl", 1))])) is None
    found = [repeated_id(("x", same)), repeated_id(("y", other))]
    assert found[0]["first_locations"] == ["a.jsonl:5", "b.jsonl:2"] and not found[0]["different_texts"]
    summary = merge_repeated_ids([summarize_repeated_ids(found[:1]), summarize_repeated_ids(found[1:])])
    assert summary["ids"] == 2 and summary["with_different_texts"] == 1
    assert [e["id"] for e in summary["examples"]] == ["x", "y"]
    assert [e["id"] for e in summary["examples_with_different_texts"]] == ["y"]
    assert summarize_repeated_ids([])["ids"] == 0


@pytest.fixture(scope="module")
def jsonl_and_truncated_copy(shard0, tmp_path_factory):
    """a.jsonl (200 documents), b.jsonl.zst (the same, compressed, cut at 70 %), c.jsonl (an
    id of a.jsonl's line 5 with another text)."""
    import zstandard

    data = zstandard.ZstdDecompressor().decompressobj().decompress(shard0.read_bytes())
    lines = [line + b"\n" for line in data.split(b"\n")[:200]]
    folder = tmp_path_factory.mktemp("ties")
    (folder / "a.jsonl").write_bytes(b"".join(lines))
    packed = zstandard.ZstdCompressor().compress(b"".join(lines))
    (folder / "b.jsonl.zst").write_bytes(packed[: int(len(packed) * 0.7)])
    reused_id = json.loads(lines[4])["id"]
    other = {"id": reused_id, "text": "같은 아이디, 다른 글입니다."}
    (folder / "c.jsonl").write_text(json.dumps(other, ensure_ascii=False) + "\n", "utf-8")
    return folder, reused_id


def test_jsonl_and_its_truncated_zst_copy_give_every_example_once(
    jsonl_and_truncated_copy, seed_config, pipeline_runner, tmp_path
):
    folder, reused_id = jsonl_and_truncated_copy
    both = pipeline_runner([folder], seed_config, tmp_path / "both")
    alone = pipeline_runner([folder / "a.jsonl"], seed_config, tmp_path / "alone")
    report = both.report
    copies = report["documents"]["read"] - 200 - 1  # the documents read from the cut copy
    assert 0 < copies < 200 and "b.jsonl.zst" in report["damaged_files"]
    assert report["rejected"]["duplicate"] >= copies
    rows = sorted((r["doc_id"], r["target"], r["coref_pos"], tuple(r["input_ids"])) for r in both.rows())
    assert rows == sorted((r["doc_id"], r["target"], r["coref_pos"], tuple(r["input_ids"])) for r in alone.rows())
    assert len(rows) == len(set(rows)) > 0
    ids = report["duplicate_ids"]
    assert ids["ids"] == copies  # every id of the copy; the one reused with another text among them
    assert ids["with_different_texts"] == 1
    (different,) = ids["examples_with_different_texts"]
    assert different["id"] == reused_id
    assert different["first_locations"][:2] == ["a.jsonl:5", "b.jsonl.zst:5"]
    assert all(e["first_locations"][0].startswith("a.jsonl:") for e in ids["examples"])
