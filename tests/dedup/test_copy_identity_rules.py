"""Issue 32, cases 2 and 8: a file given twice is read once; the copy key is the full path;
documents that share an id (other than dedup's copies) get new ids, the same for any partitioning."""

from __future__ import annotations

import json
import os
import random

import pytest

from dask_prep.dedup.exact import copy_key, fingerprint, fingerprints, first_of_repeated, mark_duplicates
from dask_prep.dedup.ids import family_renames, family_repeated_ids, id_family, rename_documents, summarize_renames
from dask_prep.document import Document
from dask_prep.io.inputs import resolve_inputs


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jsonl", "sub/b.jsonl"):
        (root / name).write_text('{"id": 1, "text": "글"}\n', encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "given",
    [
        ["a.jsonl", "a.jsonl"],  # the same path twice
        ["a.jsonl", "./sub/../a.jsonl"],  # the same resolved path
        [".", "a.jsonl"],  # a directory, then a file in it
        ["a.jsonl", "."],  # a file, then its directory
        ["*.jsonl", "a.jsonl"],  # a glob, then a file it matched
        ["a.jsonl", "../link.jsonl"],  # a symbolic link to it
    ],
)
def test_a_file_given_twice_is_read_once_and_named(given, tree, monkeypatch):
    monkeypatch.chdir(tree)
    os.symlink(tree / "a.jsonl", tree.parent / "link.jsonl")
    repeated: list[str] = []
    files = resolve_inputs([str(tree / g) for g in given], repeated)
    paths = [os.path.realpath(f.path) for f in files]
    assert len(paths) == len(set(paths)), paths
    assert paths.count(str(tree / "a.jsonl")) == 1
    assert len(repeated) == 1 and os.path.realpath(repeated[0]) == str(tree / "a.jsonl")


def test_a_directory_and_a_file_beside_it_are_two_files(tree):
    repeated: list[str] = []
    files = resolve_inputs([str(tree / "sub"), str(tree / "a.jsonl")], repeated)
    assert [f.key for f in files] == ["b.jsonl", "a.jsonl"] and repeated == []


def _doc(doc_id, text, path, line, source=None):
    return Document(doc_id=doc_id, text=text, source=source or os.path.basename(path), line=line, path=path)


def test_the_copy_key_is_the_full_path_so_mirrors_dedup():
    """mirror/v1/shard0.jsonl and mirror/v2/shard0.jsonl: equal keys, ids and texts; v1's copy stays."""
    docs = [_doc("7", "같은 글", f"/data/mirror/{v}/shard0.jsonl", 1) for v in ("v2", "v1")]
    assert docs[0].source == docs[1].source and copy_key(docs[0]) != copy_key(docs[1])
    pairs = fingerprints(docs)
    keep = dict([first_of_repeated((pairs[0][0], pairs))])
    mark_duplicates(docs, keep)
    assert [d.rejected_by for d in docs] == ["duplicate", None]


def _renames(docs, dedup=True):
    """Renames as the pipeline computes them: fingerprints shuffled by family, in any order."""
    pairs = fingerprints(docs)
    groups: dict = {}
    for pair in pairs:
        groups.setdefault(pair[0], []).append(pair)
    keep = dict(filter(None, map(first_of_repeated, groups.items()))) if dedup else {}
    families: dict = {}
    for pair in pairs:
        families.setdefault(id_family(pair), []).append(pair)
    names = {d.path: d.source for d in docs}
    found = [r for group in families.items() for r in family_renames(group, keep, names)]
    return keep, summarize_renames(found)


def _read(lines: list[dict], key: str, path: str) -> list[Document]:
    """Documents as `reading` makes them: `str(id)`, or the derived `key:line` for a null id."""
    return [
        _doc(str(r["id"]) if r.get("id") is not None else f"{key}:{i}", r["text"], path, i, key)
        for i, r in enumerate(lines, 1)
    ]


def test_numeric_and_string_ids_and_derived_ids_get_unique_ids():
    a = _read([{"id": 1, "text": "하나"}, {"id": None, "text": "둘"}], "a.jsonl", "/d/a.jsonl")
    b_lines = [{"id": "1", "text": "셋"}, {"id": "a.jsonl:2", "text": "넷"}, {"id": "1~2", "text": "다섯"}]
    b = _read(b_lines, "b.jsonl", "/d/b.jsonl")
    docs = a + b
    assert [d.doc_id for d in docs] == ["1", "a.jsonl:2", "1", "a.jsonl:2", "1~2"]
    keep, (renames, summary) = _renames(docs)
    rename_documents(docs, renames)
    ids = [d.doc_id for d in docs]
    assert len(set(ids)) == len(ids), ids
    # The first by path and line keeps its id; "1~2" is taken, so the next "1" is "1~3".
    assert ids == ["1", "a.jsonl:2", "1~3", "a.jsonl:2~2", "1~2"]
    assert summary["documents"] == 2
    assert [e["location"] for e in summary["examples"]] == ["b.jsonl:1", "b.jsonl:2"]


def test_copies_that_dedup_rejects_keep_their_ids():
    docs = [_doc("7", "같은 글", "/m/v1/s.jsonl", 1), _doc("7", "같은 글", "/m/v2/s.jsonl", 1)]
    keep, (renames, _) = _renames(docs)
    assert renames == {}
    keep, (renames, _) = _renames(docs, dedup=False)  # --no-dedup: two documents, two ids
    assert renames == {("/m/v2/s.jsonl", 1): "7~2"}


def test_new_ids_do_not_depend_on_the_order_documents_arrive_in():
    rng = random.Random(3)
    docs = [_doc(rng.choice(["1", "1~2", "2", "1~x"]), f"글 {i}", f"/d/{i % 3}.jsonl", i) for i in range(60)]
    _, (first, _) = _renames(docs)
    for _ in range(5):
        rng.shuffle(docs)
        assert _renames(docs)[1][0] == first
    rename_documents(docs, first)
    assert len({d.doc_id for d in docs}) == 60


def test_repeated_ids_are_still_reported_by_exact_id():
    docs = [_doc("x", "글", "/d/b.jsonl", 2), _doc("x", "글", "/d/a.jsonl", 5), _doc("x~1", "말", "/d/a.jsonl", 6)]
    pairs = fingerprints(docs)
    (found,) = family_repeated_ids(("x", pairs), {d.path: d.source for d in docs})
    assert found["id"] == "x" and found["first_locations"] == ["a.jsonl:5", "b.jsonl:2"]
    assert fingerprint("글") == pairs[0][0]


def test_the_cli_notes_a_repeated_input_in_one_line(tmp_path, capfd, monkeypatch):
    import dask_prep.pipeline.cluster
    from dask_prep.cli.main import main

    def stop_here(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dask_prep.pipeline.cluster, "start_client", stop_here)
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "글"}) + "\n", encoding="utf-8")
    tokenizer = os.path.join(os.path.dirname(__file__), "..", "..", "sample", "tokenizer")
    main(["run", str(data), str(tmp_path), "--model", tokenizer, "--output-dir", str(tmp_path / "out")])
    notes = [line for line in capfd.readouterr().err.splitlines() if "more than once" in line]
    assert notes == [f"dask-prep: note: 1 input file(s) given more than once are read once: {tmp_path}/a.jsonl"]
