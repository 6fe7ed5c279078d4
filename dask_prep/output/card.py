"""The document-level validation split and the dataset card (README.md) of the output.

A document goes to `validation` when a stable hash of its id falls below the fraction, so
every example of a document lands in the same split, whatever the partitioning, worker
count or order. The card is the Hugging Face dataset card format: a YAML header with the
features, splits and sizes (written by `datasets`/`huggingface_hub`), then how the dataset
was made.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import yaml

from dask_prep.coref.tokenizer import looks_like_path
from dask_prep.io import storage

SPLIT_SALT = "dask-prep validation split"


def validation_share(doc_id: str) -> float:
    """Where a document falls in [0, 1): a stable hash of its id (the same on every machine)."""
    digest = hashlib.blake2b(f"{SPLIT_SALT}\x1f{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_validation(doc_id: str, fraction: float) -> bool:
    return validation_share(doc_id) < fraction


def split_by_document(dataset: Any, fraction: float) -> Any:
    """A `DatasetDict` of `train` and `validation`, each document's examples in one of them."""
    import datasets

    if "doc_id" not in dataset.column_names:  # no parts at all: two empty splits
        return datasets.DatasetDict({"train": dataset, "validation": dataset})

    def flags(doc_ids: list[str], validation: bool) -> list[bool]:
        return [in_validation(d, fraction) == validation for d in doc_ids]

    return datasets.DatasetDict(
        {
            name: dataset.filter(
                flags, input_columns="doc_id", batched=True, fn_kwargs={"validation": name == "validation"}
            )
            for name in ("train", "validation")
        }
    )


def count_documents(dataset: Any) -> int:
    """Distinct doc ids of a dataset sorted by doc id, without holding them all."""
    if "doc_id" not in dataset.column_names:
        return 0
    count, last = 0, None
    for batch in dataset.select_columns(["doc_id"]).iter(batch_size=10_000):
        for doc_id in batch["doc_id"]:
            if doc_id != last:
                count += 1
                last = doc_id
    return count


def _arrow_bytes(directory: str) -> int:
    """Bytes of the Arrow files in `directory` (a local directory or a store prefix)."""
    fs, inner = storage.filesystem(directory)
    fs.invalidate_cache(inner)
    return sum(entry["size"] for entry in fs.ls(inner, detail=True) if entry["name"].endswith(".arrow"))


def split_stats(splits: dict[str, Any], saved_dir: str, is_dict: bool) -> dict[str, dict[str, int]]:
    """{split: examples, documents, bytes on disk} of a dataset just saved to `saved_dir`."""
    return {
        name: {
            "examples": dataset.num_rows,
            "documents": count_documents(dataset),
            "bytes": _arrow_bytes(os.path.join(saved_dir, name) if is_dict else saved_dir),
        }
        for name, dataset in splits.items()
    }


DESCRIPTION = (
    "Entity-coreference examples from Korean text for masked language models. In each "
    "example a later mention of a name (a whole proper-noun phrase) is replaced by mask "
    "tokens (labels: the mention's token ids); the first mention of the same string in the "
    "document is the antecedent, located by antecedent_pos/antecedent_start/antecedent_end. "
    "Made by dask-prep."
)


def card_text(
    *,
    features: Any,
    splits: dict[str, dict[str, int]],
    name: str,
    command: str,
    config: dict[str, Any],
    counts: dict[str, Any],
    tokenizer: dict[str, Any],
    versions: dict[str, str | None],
) -> str:
    """The README.md of the dataset directory, in the Hugging Face card format."""
    from huggingface_hub import DatasetCard

    data = _card_data(features, splits, name, config["output"].get("license"))
    split_rows = "\n".join(
        f"| {s} | {v['documents']:,} | {v['examples']:,} | {v['bytes']:,} |" for s, v in splits.items()
    )
    fraction = config["output"].get("validation_fraction")
    split_rule = (
        f"Documents go to `validation` by a stable hash of `doc_id` (fraction {fraction}): "
        "no document is in both splits, and the split is the same for any partitioning."
        if fraction
        else "One split: the whole dataset (run without `--validation-fraction`)."
    )
    made_lines = "\n".join(_made_lines(counts, tokenizer, config))
    version_rows = "\n".join(f"| {k} | {v or 'not installed'} |" for k, v in versions.items())
    changed = config_changes(config)
    config_yaml = yaml.safe_dump(changed, sort_keys=False, allow_unicode=True).rstrip() if changed else "{}"
    column_rows = "\n".join(f"| `{c}` | {COLUMNS[c]} |" for c in _column_names(features) if c in COLUMNS)
    body = f"""# {name}

{DESCRIPTION}
{_warning_lines(counts)}
- **Source:** {config["output"].get("source") or "not given (`--source`)"}
- **Licence:** {config["output"].get("license") or "not given (`--license`); the source's licence applies"}
- **Tokenizer:** {_tokenizer_line(tokenizer)}

{_loading_section(name)}
## Columns

| column | meaning |
| --- | --- |
{column_rows}

{_examples_section(config)}
## Splits

| split | documents | examples | bytes |
| --- | ---: | ---: | ---: |
{split_rows}

{split_rule}

## How it was made

```
{short_command(command)}
```

{made_lines}

Config fields that differ from the preset `{config.get("preset")}`:

```yaml
{config_yaml}
```

| package | version |
| --- | --- |
{version_rows}
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _card_data(features: Any, splits: dict[str, dict[str, int]], name: str, licence: str | None) -> Any:
    """The card's YAML header: language, task, licence, features and split sizes (`datasets`' own)."""
    import datasets
    from huggingface_hub import DatasetCardData

    info = datasets.DatasetInfo(
        description=DESCRIPTION,
        features=features,
        splits=datasets.SplitDict(
            {s: datasets.SplitInfo(name=s, num_bytes=v["bytes"], num_examples=v["examples"]) for s, v in splits.items()}
        ),
        dataset_size=sum(v["bytes"] for v in splits.values()),
    )
    data = DatasetCardData(language=["ko"], task_categories=["fill-mask"], pretty_name=name, license=licence)
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


def _loading_section(name: str) -> str:
    return f"""## Loading

```python
import datasets

ds = datasets.load_from_disk("{name}")  # this directory
# or stream the parquet shards next to it:
ds = datasets.load_dataset("parquet", data_files="parquet/*.parquet", split="train", streaming=True)
```

"""


def _examples_section(config: dict[str, Any]) -> str:
    return f"""## Examples

- A **mention** is a whole name (`entities.mentions: names`): a run of proper-noun words (Kiwi
  `NNP`) that heads its last word, not followed by a numeral, Latin letters or a noun that continues
  it (`닌텐도 64`, `오사카 대학`); no prefix 주(駐) and no particle is part of it.
- Mentions are grouped by the exact characters of the text; `target` is that string:
  `text[antecedent_pos:antecedent_pos+len(target)] == target == text[coref_pos:coref_pos+len(target)]`.
- Targets tagged a proper noun at fewer than {config["entities"].get("min_proper_share", 0)} of their whole-word
  occurrences in the kept documents are dropped (`not_proper_noun`).
- The first mention is the antecedent; later mentions (at most `entities.max_masked_mentions`,
  {config["entities"]["min_distance"]}-{config["entities"]["max_distance"]} characters after it, not right after a
  title line holding the antecedent) each give one example, at most `entities.max_entity_freq`
  per target over the whole corpus. Every other copy of the target in the window is masked too
  (`masked_copies`), so the antecedent is the only copy the model sees."""


COLUMNS = {
    "doc_id": "the source document's id",
    "input_ids": (
        "the tokenized text (special tokens included), the mention and its other copies replaced by mask tokens"
    ),
    "attention_mask": "1 for every token (0 for padding with `--pad-to-max-length`)",
    "token_type_ids": "the tokenizer's segment ids: all 0 (one segment)",
    "labels": "-100 except at the mask tokens, which hold the target's token ids",
    "target": "the entity as written in the text (what the masks stand for)",
    "target_ids": "the target's token ids, tokenized alone (the labels at each group of masks)",
    "antecedent_pos": "character offset of the first mention (the antecedent) in the source text",
    "coref_pos": "character offset of the masked mention in the source text",
    "distance": "coref_pos - antecedent_pos, in characters",
    "mask_start": "token index of the masked mention's first mask in input_ids",
    "mask_end": "token index after its last mask (exclusive)",
    "antecedent_start": "token index of the antecedent's first token in input_ids",
    "antecedent_end": "token index after the antecedent's last token (exclusive)",
    "masked_copies": (
        "token indices where other masked copies of the target start (each as long as mask_end - mask_start)"
    ),
}


def _column_names(features: Any) -> list[str]:
    return list(features.keys()) if hasattr(features, "keys") else list(COLUMNS)


def _warning_lines(counts: dict[str, Any]) -> str:
    warnings = counts.get("warnings") or []
    return "".join(f"\n> **Warning:** {w}\n" for w in warnings)


def _tokenizer_line(tokenizer: dict[str, Any]) -> str:
    model, size = tokenizer.get("model") or "", tokenizer.get("vocab_size")
    vocab = f", vocabulary of {size:,}" if size else ""
    kind = tokenizer.get("class") or "tokenizers backend"
    if tokenizer.get("local"):
        return f"a local tokenizer, `{os.path.basename(model.rstrip('/'))}` ({kind}{vocab})"
    return f"[`{model}`](https://huggingface.co/{model}) ({kind}{vocab})"


def short_command(command: str) -> str:
    """The command with every path or URL reduced to its last component (no machine paths on a card)."""
    import shlex

    if not command.startswith("dask-prep"):
        return command  # the Python API call, already without directories
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out: list[str] = []
    for word in words:
        # Every path or URL; a hub model name (`--model owner/name`, not a directory) stays.
        hub_name = out[-1:] == ["--model"] and not looks_like_path(word)
        if "/" in word and not hub_name and not word.startswith("{"):
            word = os.path.basename(word.rstrip("/")) or word
        out.append(word)
    return shlex.join(out)


def config_changes(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields whose values differ from the named preset's (model paths reduced)."""
    from dask_prep.config import preset

    base = preset(config.get("preset") or "seed-v2").to_dict()
    changed = _diff(config, base)
    model = (changed.get("tokenize") or {}).get("model")
    if model and os.path.isdir(model):
        changed["tokenize"]["model"] = os.path.basename(model.rstrip("/"))
    return changed


def _diff(new: Any, old: Any) -> Any:
    if isinstance(new, dict) and isinstance(old, dict):
        out = {}
        for key, value in new.items():
            if key not in old:
                out[key] = value
            elif value != old[key]:
                out[key] = _diff(value, old[key])
        return out
    return new


def _made_lines(counts: dict[str, Any], tokenizer: dict[str, Any], config: dict[str, Any]) -> list[str]:
    docs, examples = counts["documents"], counts["examples"]
    dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(examples["dropped"].items())) or "none"
    share = counts.get("tokenizer_coverage", {}).get("unknown_share")
    return [
        f"- input documents: {docs['read']:,} read, {docs['malformed']:,} malformed, "
        f"{docs['rejected']:,} rejected, {docs['kept']:,} kept "
        f"({docs.get('kept_without_examples', 0):,} of them without a written example)",
        f"- examples: {examples['before_cap']:,} candidates (later mentions; {examples.get('echo', 0):,} title "
        f"echoes excluded), {examples.get('not_proper_noun', 0):,} of targets that are not proper nouns, "
        f"{examples.get('over_cap', 0):,} over the cap, {examples['after_cap']:,} after the cap; "
        f"dropped: {dropped}; {examples['written']:,} written",
        f"- unknown token `{tokenizer.get('unk_token')}`; coverage: "
        + ("n/a" if share is None else f"{share:.2%} of the examples' tokens are the unknown token"),
    ]
