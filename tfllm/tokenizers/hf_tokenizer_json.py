"""Which Hugging Face `tokenizer.json` files tfllm reproduces exactly (and with what), and a clear error for the rest.

A BPE `tokenizer.json` is one of several tokenizers in one format:
- GPT-2 byte-level BPE (GPT-2, RoBERTa, and what `tokenizers`'
  `ByteLevelBPETokenizer` trains): the `ByteLevel` pre-tokenizer with its
  regex, or GPT-2's regex as a `Split`, and no normalizer:
  `BytePairTokenizer`.
- Llama 3 / Qwen2 byte-level BPE: a `Split` pre-tokenizer with the Llama 3
  or Qwen2 regex (digits one to three at a time or one, case-insensitive
  contractions), then `ByteLevel` without regex; Qwen2 also NFC-normalizes,
  Llama 3 sets `ignore_merges`. SmolLM: `Digits(individual_digits=True)`,
  then `ByteLevel` with GPT-2's regex. Both: `RegexBytePairTokenizer`, with
  every added token (`<|begin_of_text|>`, `<|im_start|>`...) matched in the text.
- SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): `byte_fallback`,
  a `Metaspace` pre-tokenizer or a `▁`-replacing normalizer. These folders
  ship the SentencePiece model, `tokenizer.model`, which tensorflow-text
  runs (keras-hub `SentencePieceTokenizer`); without it, a `ConfigError`.
Anything else is refused naming the field: tokenizing it with GPT-2's
rules runs and gives other ids.

Special-token templates of the `post_processor` (a BOS token in front)
are not applied: ids equal Hugging Face's `encode(text, add_special_tokens=False)`.
"""

from tfllm.errors import ConfigError
from tfllm.tokenizers.regex_byte_pair import SPLITS

SUPPORTED = ("GPT-2 style byte-level BPE (a ByteLevel pre-tokenizer with its regex, no normalizer), "
             "Llama 3 / Qwen2 byte-level BPE (a Split regex of theirs, then ByteLevel without regex; "
             "normalizer none or NFC), SmolLM's (Digits, then ByteLevel), "
             "and SentencePiece-style BPE with its tokenizer.model")
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
SENTENCE_PIECE_MODEL = "tokenizer.model"


def _describe(part):
    if not isinstance(part, dict):
        return repr(part)
    if part.get("type") == "Sequence":
        inner = part.get("pretokenizers") or part.get("normalizers") or []
        return "Sequence[" + ", ".join(_describe(p) for p in inner) + "]"
    return str(part.get("type"))


def is_sentence_piece_style(data):
    """True for a SentencePiece-converted BPE (Llama 2, Mistral, TinyLlama): byte fallback or `▁` for spaces."""
    text = str(data.get("pre_tokenizer")) + str(data.get("normalizer"))
    return bool((data.get("model") or {}).get("byte_fallback") or "Metaspace" in text or "▁" in text)


def _kind(data):
    """A short name for what kind of tokenizer this is, for the error message."""
    if is_sentence_piece_style(data):
        return f"a SentencePiece-style BPE (as Llama 2, Mistral, TinyLlama) without its {SENTENCE_PIECE_MODEL}"
    if "Split" in str(data.get("pre_tokenizer")):
        return "a byte-level BPE with a pre-tokenizer regex tfllm does not know"
    return "a BPE tokenizer"


def _split_regex(pre):
    """The regex of a `Sequence[Split(regex, Isolated), ByteLevel(use_regex=False)]` pre-tokenizer, else None."""
    if not (isinstance(pre, dict) and pre.get("type") == "Sequence" and len(pre.get("pretokenizers") or []) == 2):
        return None
    split, byte_level = pre["pretokenizers"]
    if not (split.get("type") == "Split" and split.get("behavior") == "Isolated" and not split.get("invert")
            and byte_level.get("type") == "ByteLevel" and not byte_level.get("use_regex", True)
            and not byte_level.get("add_prefix_space", False)):
        return None
    pattern = split.get("pattern") or {}
    return pattern.get("Regex", pattern.get("String", ""))


def _is_digits_byte_level(pre):
    """SmolLM's pre-tokenizer: `Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)]`."""
    parts = (pre or {}).get("pretokenizers") or [] if isinstance(pre, dict) and pre.get("type") == "Sequence" else []
    return (len(parts) == 2 and parts[0].get("type") == "Digits" and parts[0].get("individual_digits")
            and parts[1].get("type") == "ByteLevel" and parts[1].get("use_regex", True)
            and not parts[1].get("add_prefix_space", False))


def byte_level_settings(data, source):
    """How to rebuild a byte-level BPE `tokenizer.json` (parsed: `data`): a dict of settings, or `ConfigError`.

    {"split": None} is GPT-2's split (`BytePairTokenizer`); {"split": "llama3"
    or "qwen2", "normalization", "ignore_merges"} a `RegexBytePairTokenizer`.
    """
    model = data.get("model") or {}

    def refuse(field, value):
        raise ConfigError(f"{source}: {field}={value} is not supported: this is {_kind(data)}; tfllm tokenizes "
                          f"only {SUPPORTED}. Load the model with token ids, or tokenize with Hugging Face.")

    if model.get("type", "BPE") != "BPE":
        refuse("model.type", repr(model.get("type")))
    if model.get("byte_fallback"):
        refuse("model.byte_fallback", "true")
    for field in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(field):
            refuse(f"model.{field}", repr(model[field]))
    pre, normalizer = data.get("pre_tokenizer"), data.get("normalizer")
    pattern = _split_regex(pre)
    if _is_digits_byte_level(pre) or (pattern is not None and pattern != GPT2_SPLIT):
        split = "digits_gpt2" if pattern is None else next(
            (name for name, (hf_regex, _, _) in SPLITS.items() if hf_regex == pattern), None)
        if split is None:
            refuse("pre_tokenizer.pretokenizers[0].pattern", repr(pattern[:80]))
        if normalizer not in (None, {"type": "NFC"}):
            refuse("normalizer", _describe(normalizer))
        for token in data.get("added_tokens") or []:
            for field in ("single_word", "lstrip", "rstrip"):
                if token.get(field):
                    refuse(f"added_tokens[{token.get('content')!r}].{field}", "true")
        return dict(split=split, normalization=normalizer and "NFC", ignore_merges=bool(model.get("ignore_merges")))
    if model.get("ignore_merges"):
        refuse("model.ignore_merges", "true")
    if normalizer:
        refuse("normalizer", _describe(normalizer))
    if pattern is None and not (isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
                                and not pre.get("add_prefix_space", False)):
        refuse("pre_tokenizer", _describe(pre))
    return dict(split=None)

