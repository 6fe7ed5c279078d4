"""Exact deduplication (issue 4): injected copies are removed exactly once, for any partitioning."""

from __future__ import annotations

import json

import pytest

from dask_prep.dedup.exact import collapse_whitespace, fingerprint


def test_fingerprint_ignores_nfkc_and_whitespace_differences() -> None:
    text = "서울특별시는 대한민국의 수도이다.\n서울은 크다."
    assert fingerprint(text) == fingerprint("  서울특별시는   대한민국의 수도이다.\t서울은 크다.  ")
    assert fingerprint("ＡＢＣ 서울") == fingerprint("ABC 서울")  # NFKC folds full-width letters
    assert fingerprint(text) != fingerprint(text.replace("서울은", "부산은"))


def test_the_space_is_the_only_printable_whitespace() -> None:
    # What `collapse_whitespace`'s fast path rests on, over every code point.
    assert [c for c in map(chr, range(0x110000)) if c.isspace() and c.isprintable()] == [" "]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n",
        "a",
        " a ",
        "a  b",
        "a\n\n\nb",
        "a \t\r\n b",
        "a" + " " * 9 + "b",
        "a\u3000b",
        "a\xa0 b",
        "a\u2028b",
        "a\x1cb",
        "a\x85b",
        "\u1680a",
        "a\x0bb\x0c",
        "서울 \n 부산",
        "a\u200bb",
    ],
)
def test_collapse_whitespace_is_split_and_join(text: str) -> None:
    assert collapse_whitespace(text) == " ".join(text.split())


def test_collapse_whitespace_is_split_and_join_on_real_documents(shard0) -> None:
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

    files = resolve_inputs([str(shard0)])
    docs, _ = read_partition(plan_partitions(files, [scan_file(files[0]).records], 2000)[0], "text", "id")
    texts = [d.text for d in docs if d.text]
    assert len(texts) > 1000
    assert [collapse_whitespace(t) for t in texts] == [" ".join(t.split()) for t in texts]


@pytest.fixture(scope="module")
def corpus_with_copies(tmp_path_factory, shard0):
    """300 real documents, plus a second file holding 20 exact and 20 whitespace-variant copies."""
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

    files = resolve_inputs([str(shard0)])
    docs, _ = read_partition(plan_partitions(files, [scan_file(files[0]).records], 300)[0], "text", "id")
    records = [{"id": d.doc_id, "text": d.text} for d in docs]
    kept_length = [r for r in records if 800 <= len(r["text"]) <= 2500]
    copies = []
    for i, record in enumerate(kept_length[:40]):
        text = record["text"] if i < 20 else "  " + record["text"].replace(" ", "   ").replace("\n", " \n ")
        copies.append({"id": f"zz-copy-{i:02d}", "text": text})  # "zz" sorts after the originals
    folder = tmp_path_factory.mktemp("dups")
    (folder / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    (folder / "b.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in copies), "utf-8")
    originals = {r["id"] for r in kept_length[:40]}
    return folder, originals, {c["id"] for c in copies}


@pytest.mark.parametrize("partition_size", [37, 1000])
def test_each_copy_is_removed_once_for_any_partitioning(
    partition_size, corpus_with_copies, seed_config, pipeline_runner, tmp_path
) -> None:
    import pyarrow.parquet as pq

    folder, originals, copy_ids = corpus_with_copies
    run = pipeline_runner([folder], seed_config, tmp_path / "out", exact_partition_size=partition_size)
    report = run.report
    assert report["documents"]["read"] == 340
    assert report["rejected"]["duplicate"] == 40
    assert report["duplicate_texts"] == 40
    decisions = pq.read_table(tmp_path / "out" / "decisions").to_pylist()
    duplicates = {d["doc_id"] for d in decisions if d["rejected_by"] == "duplicate"}
    assert duplicates == copy_ids  # the copy with the larger id goes; the original stays
    assert not any(d["doc_id"] in originals and d["rejected_by"] == "duplicate" for d in decisions)
    example_docs = {row["doc_id"] for row in run.rows(["doc_id"])}
    assert example_docs and not example_docs & copy_ids
    baseline = _result_without_copies(folder, seed_config, pipeline_runner, tmp_path)
    assert sorted((r["doc_id"], r["target"], r["coref_pos"]) for r in run.rows()) == baseline


def _result_without_copies(folder, config, pipeline_runner, tmp_path) -> list:
    run = pipeline_runner([folder / "a.jsonl"], config, tmp_path / "alone")
    return sorted((r["doc_id"], r["target"], r["coref_pos"]) for r in run.rows())
