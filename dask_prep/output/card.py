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
    "example a later mention of a proper noun that heads a whole word is replaced by mask "
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

    data = _card_data(features, splits, name)
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
    made_lines = _how_it_was_made(counts, tokenizer, config)
    version_rows = "\n".join(f"| {k} | {v or 'not installed'} |" for k, v in versions.items())
    config_yaml = yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip()
    body = f"""# {name}

{DESCRIPTION}

## Examples

- A **mention** is a proper noun (Kiwi `NNP`, or a run of `NNP`s written without a space)
  that starts a word and heads it: only particles, endings, the copula, verb-making
  suffixes or punctuation may follow it in that word (`entities.mentions: whole_word`).
- Mentions are grouped by the exact characters of the text; `target` is that string:
  `text[antecedent_pos:antecedent_pos+len(target)] == target == text[coref_pos:coref_pos+len(target)]`.
- The first mention is the antecedent; later mentions (at most `entities.max_masked_mentions`,
  {config["entities"]["min_distance"]}-{config["entities"]["max_distance"]} characters after it) each
  give one example, at most `entities.max_entity_freq` per target over the whole corpus.
- `mask_start:mask_end` are the mask tokens that replace the mention (`labels` hold the
  target's ids there, -100 elsewhere); `antecedent_start:antecedent_end` are exactly the
  tokens of the antecedent's characters. Examples whose antecedent shares a token with
  neighbouring text are dropped (`boundary`).

## Splits

| split | documents | examples | bytes |
| --- | ---: | ---: | ---: |
{split_rows}

{split_rule}

## How it was made

```
{command}
```

{made_lines}

```yaml
{config_yaml}
```

| package | version |
| --- | --- |
{version_rows}
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _card_data(features: Any, splits: dict[str, dict[str, int]], name: str) -> Any:
    """The card's YAML header: language, task, features and split sizes (`datasets`' own)."""
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
    data = DatasetCardData(language=["ko"], task_categories=["fill-mask"], pretty_name=name)
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


def _how_it_was_made(counts: dict[str, Any], tokenizer: dict[str, Any], config: dict[str, Any]) -> str:
    """The card's counts, tokenizer and preset lines."""
    docs, examples = counts["documents"], counts["examples"]
    dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(examples["dropped"].items())) or "none"
    share = counts.get("tokenizer_coverage", {}).get("unknown_share")
    made = [
        f"- input documents: {docs['read']:,} read, {docs['malformed']:,} malformed, "
        f"{docs['rejected']:,} rejected, {docs['kept']:,} kept "
        f"({docs.get('kept_without_examples', 0):,} of them without an example)",
        f"- examples: {examples['before_cap']:,} before the cap, {examples['after_cap']:,} after, "
        f"dropped: {dropped}; {examples['written']:,} written",
        f"- tokenizer: `{tokenizer.get('model')}` ({tokenizer.get('class') or 'tokenizers backend'}), "
        f"unknown token `{tokenizer.get('unk_token')}`",
        "- tokenizer coverage: "
        + ("n/a" if share is None else f"{share:.2%} of the examples' tokens are the unknown token"),
        f"- preset `{config.get('preset')}`; full config:",
    ]
    return "\n".join(made)
