"""The tokenizer: where a model comes from (a local directory, the Hugging Face cache or the
hub), loading and checking it once per process, and the portable form sent to workers.

Works with any Hugging Face fast tokenizer. The client loads it with transformers once and
checks it; workers get a `PortableTokenizer` (its `tokenizers` backend as JSON and the
special tokens) and rebuild the backend from it, without importing transformers.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any


class TokenizerError(RuntimeError):
    """The tokenizer cannot be loaded or lacks what masking needs."""


_load_lock = threading.Lock()


def load_tokenizer(model: str) -> Any:
    """One tokenizer per process and model (hub name or local directory).

    Locked: with `--threads-per-worker` > 1 two tasks may ask at once, and importing
    transformers from two threads at once fails (measured: "cannot import name
    'AutoTokenizer'" in a 1-worker x 2-thread benchmark run).
    """
    with _load_lock:
        return _load_tokenizer(model)


def looks_like_path(model: str) -> bool:
    """A model name that is meant as a path: starts with '.', '/' or '~', or has a '/' after an existing directory.

    `kakaobank/kf-deberta-base` is a hub name unless ./kakaobank exists; `sample/tokenizr`
    (a typo) is a path when ./sample exists, and fails at once instead of asking the hub.
    """
    if model.startswith((".", "/", "~")):
        return True
    parent = os.path.dirname(model.rstrip("/"))
    return bool(parent) and os.path.isdir(parent)


def check_model_path(model: str) -> None:
    """A model given as a path must be a directory; cheap, so it runs before anything starts."""
    if looks_like_path(model) and not os.path.isdir(os.path.expanduser(model)):
        raise TokenizerError(
            f"cannot load tokenizer {model!r}: no such directory. Pass a directory holding the tokenizer "
            "files (tokenizer_config.json, vocab), or a hub name such as kakaobank/kf-deberta-base"
        )


HUB_PROBE_TIMEOUT = 3.0  # seconds to wait for the hub before a run is treated as offline


def check_model(model: str) -> None:
    """Fail now, in seconds, if `model` can be neither found locally nor downloaded.

    Decides once per process where the model comes from (`model_source`); the load later
    follows that decision instead of retrying an unreachable hub.
    """
    model_source(model)


@functools.lru_cache(maxsize=8)
def model_source(model: str) -> str:
    """'local' (a directory), 'cache' (the Hugging Face cache, without asking the hub) or 'hub'.

    A hub name is looked up in the cache, and the hub is asked once whether it answers
    (`HUB_PROBE_TIMEOUT`); unreachable, a cached model is loaded offline and a model not in
    the cache is an error, instead of transformers' retries (a minute of warnings).
    """
    check_model_path(model)
    if os.path.isdir(os.path.expanduser(model)):
        return "local"
    from huggingface_hub import constants

    cached = _in_hub_cache(model)
    if constants.HF_HUB_OFFLINE:
        if cached:
            return "cache"
        raise TokenizerError(
            _unavailable(model, "HF_HUB_OFFLINE is set, so the hub is not asked")
            + " Or unset HF_HUB_OFFLINE, with network access, to download it."
        )
    unreachable = _hub_unreachable(constants.ENDPOINT)
    if unreachable is None:
        return "hub"
    if cached:
        return "cache"
    raise TokenizerError(_unavailable(model, f"the hub at {constants.ENDPOINT} cannot be reached ({unreachable})"))


def _unavailable(model: str, why: str) -> str:
    from huggingface_hub import constants

    return (
        f"cannot load tokenizer {model!r}: it is not a local directory, not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and {why}. Pass a local directory with the tokenizer files, "
        "download the model once with network access (it is then cached), or use a model already in the cache."
    )


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("tokenizer_config.json", "tokenizer.json"):
        try:
            if isinstance(try_to_load_from_cache(model, filename), str):
                return True
        except Exception:  # not a valid repo id: then it is not cached either
            return False
    return False


def _hub_unreachable(endpoint: str) -> str | None:
    """None if the hub answers at all (any HTTP status), else why not, in a few words."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_PROBE_TIMEOUT).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except urllib.error.URLError as exc:
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    except (OSError, ValueError) as exc:  # a timeout, a reset, a malformed endpoint
        return str(exc) or type(exc).__name__
    return None


@functools.lru_cache(maxsize=4)
def _load_tokenizer(model: str) -> Any:
    source = model_source(model)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            os.path.expanduser(model) if source == "local" else model, local_files_only=source == "cache"
        )
    except Exception as exc:
        raise TokenizerError(
            f"cannot load tokenizer {model!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Pass a local directory with the tokenizer files, or a hub name with network access "
            "(offline, set HF_HUB_OFFLINE=1 and use a model already in the cache)."
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError(
            f"{model!r} has no fast tokenizer (transformers could not convert {type(tokenizer).__name__}); "
            "character offsets are needed to place the mask and the antecedent span exactly. "
            "Give a directory with a tokenizer.json (tokenizers library), or a model that has one"
        )
    # `model_max_length` stays the model's own: the run counts and warns about rows longer
    # than it (windowing to --seq-len is ours; the workers encode with the backend, which never warns).
    if tokenizer.mask_token is None:
        raise TokenizerError(f"{model!r} has no mask token; a masked-LM tokenizer is needed")
    return tokenizer


@dataclass(frozen=True)
class PortableTokenizer:
    """What encoding needs of a fast tokenizer, small enough to send to every worker.

    transformers' fast tokenizers encode with their `tokenizers` backend; the rest of what
    masking needs is the special tokens. Rebuilding the backend from JSON is cheap, where
    importing transformers and loading the tokenizer in every worker at the start of stage 2
    costs seconds and memory.
    """

    backend_json: str
    mask_token: str
    mask_token_id: int
    unk_token_id: int | None
    pad_token_id: int
    with_token_type_ids: bool
    split_special_tokens: bool = False
    unk_token: str | None = None
    class_name: str = ""
    model_max_length: int | None = None  # None: the tokenizer declares no maximum
    vocab_size: int = 0

    @classmethod
    def load(cls, model: str) -> PortableTokenizer:
        """Load and check `model` (hub name or directory) with transformers."""
        tok = load_tokenizer(model)
        return cls(
            backend_json=tok.backend_tokenizer.to_str(),
            mask_token=tok.mask_token,
            mask_token_id=tok.mask_token_id,
            unk_token_id=tok.unk_token_id,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
            with_token_type_ids="token_type_ids" in tok.model_input_names,
            split_special_tokens=bool(getattr(tok, "split_special_tokens", False)),
            unk_token=tok.unk_token,
            class_name=type(tok).__name__,
            # transformers puts a huge sentinel (about 1e30) where a tokenizer declares no maximum.
            model_max_length=tok.model_max_length if tok.model_max_length < 1 << 40 else None,
            vocab_size=len(tok),
        )

    def backend(self) -> Any:
        """The `tokenizers.Tokenizer`, built once per process."""
        return _backend(self.backend_json, self.split_special_tokens)


@functools.lru_cache(maxsize=4)
def _backend(backend_json: str, split_special_tokens: bool) -> Any:
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(backend_json)
    # As transformers sets it for `tokenizer(text)`: no truncation or padding (windowing is
    # ours), special tokens in the text recognised as such.
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = split_special_tokens
    return backend
