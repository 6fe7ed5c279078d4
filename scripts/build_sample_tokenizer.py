"""Build the small cased BERT WordPiece tokenizer that the quick start uses.

    python scripts/build_sample_tokenizer.py                 # writes sample/tokenizer/
    python scripts/build_sample_tokenizer.py --output DIR    # anywhere else

It is trained on the repo's own sample (sample/ko_sample.jsonl) and saved with
`save_pretrained`, so `AutoTokenizer.from_pretrained("sample/tokenizer")` loads it offline.
It has no model behind it: it exists so that `dask-prep run` works on a fresh machine.

Why not `BertWordPieceTokenizer.train`: the WordPiece trainer of `tokenizers` gives a
different vocabulary on every run (huggingface/tokenizers#1794: `##` pieces get ids in
hash-map order, and those ids break ties between merges). The plain BPE trainer is
deterministic, so the vocabulary is learnt with it on words that carry a word-start mark
(`▁`), and then written as WordPiece: a piece with the mark starts a word, a piece
without it becomes a `##` continuation. Same input, same files, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

REPO = Path(__file__).resolve().parent.parent
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORD_START = "\u2581"  # marks the first piece of a word while learning merges
DEFAULT_BPE_SIZE = 2500  # BPE budget; single characters are added on top (~3k tokens in all)
MODEL_MAX_LENGTH = 2048  # no positional limit (there is no model); matches --seq-len's default


def read_texts(path: Path, text_field: str = "text") -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                text = json.loads(line).get(text_field)
                if isinstance(text, str):
                    texts.append(text)
    return texts


def bert_normalizer() -> normalizers.BertNormalizer:
    # Cased, and no accent stripping: stripping decomposes Hangul syllables into jamo.
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)


def learn_vocab(texts: list[str], bpe_size: int = DEFAULT_BPE_SIZE) -> list[str]:
    """The WordPiece vocabulary in id order: special tokens first, then the learnt pieces."""
    normalizer, pre = bert_normalizer(), pre_tokenizers.BertPreTokenizer()
    # The words exactly as the BERT tokenizer will see them, each marked at its start.
    lines = [
        " ".join(WORD_START + word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(t))) for t in texts
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=bpe_size, min_frequency=2, limit_alphabet=100_000, show_progress=False)
    bpe.train_from_iterator(lines, trainer)
    learnt = sorted(bpe.get_vocab().items(), key=lambda item: item[1])

    pieces: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    for token, _ in learnt:
        if token == WORD_START:
            continue
        pieces.setdefault(token[1:] if token.startswith(WORD_START) else "##" + token)
    # Every character of the sample can start a word and continue one: no [UNK] inside it.
    for ch in sorted({ch for token, _ in learnt for ch in token if ch != WORD_START}):
        pieces.setdefault(ch)
        pieces.setdefault("##" + ch)
    return list(pieces)


def build(input_path: Path, output_dir: Path, bpe_size: int = DEFAULT_BPE_SIZE) -> int:
    """Train and save; returns the vocabulary size."""
    import transformers
    from transformers import BertTokenizerFast

    vocab = {token: i for i, token in enumerate(learn_vocab(read_texts(input_path), bpe_size))}
    options = dict(
        do_lower_case=False,
        strip_accents=False,
        tokenize_chinese_chars=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=MODEL_MAX_LENGTH,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    if int(transformers.__version__.split(".")[0]) >= 5:
        tokenizer = BertTokenizerFast(vocab=vocab, **options)
    else:  # transformers 4 builds the fast tokenizer from a vocab.txt
        vocab_file = output_dir / "vocab.txt"
        vocab_file.write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), **options)
    tokenizer.save_pretrained(str(output_dir))
    # vocab.txt too, so that the slow BertTokenizer and other tools can read it.
    (output_dir / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
    return len(vocab)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=REPO / "sample" / "ko_sample.jsonl")
    parser.add_argument("--output", type=Path, default=REPO / "sample" / "tokenizer")
    parser.add_argument("--bpe-size", type=int, default=DEFAULT_BPE_SIZE, help="BPE vocabulary budget")
    args = parser.parse_args(argv)
    size = build(args.input, args.output, args.bpe_size)
    print(f"wrote {args.output} ({size} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
