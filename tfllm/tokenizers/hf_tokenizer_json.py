"""Which Hugging Face `tokenizer.json` files tfllm's byte-level BPE reproduces exactly, and a clear error for the rest.

A BPE `tokenizer.json` is one of several tokenizers in one format:
- GPT-2 byte-level BPE (GPT-2, RoBERTa, and what `tokenizers`'
  `ByteLevelBPETokenizer` trains): the `ByteLevel` pre-tokenizer with its
  regex and no normalizer. tfllm's `BytePairTokenizer` gives the same ids.
- Llama 3 / Qwen2 byte-level BPE: a `Split` pre-tokenizer with another
  regex (digits one to three at a time, case-insensitive contractions),
  then `ByteLevel` without regex; Qwen2 also NFC-normalizes. Not supported.
- SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): `byte_fallback`,
  a `Metaspace` pre-tokenizer or a `▁`-replacing normalizer. Not supported.
Refusing them beats tokenizing them with GPT-2's rules, which runs and
gives other ids.

Special-token templates of the `post_processor` (a BOS token in front)
are not applied: ids equal Hugging Face's `encode(text, add_special_tokens=False)`.
"""

from tfllm.errors import ConfigError

SUPPORTED = ("GPT-2 style byte-level BPE (a ByteLevel pre-tokenizer with its regex, no normalizer)")


def _describe(part):
    if not isinstance(part, dict):
        return repr(part)
    if part.get("type") == "Sequence":
        inner = part.get("pretokenizers") or part.get("normalizers") or []
        return "Sequence[" + ", ".join(_describe(p) for p in inner) + "]"
    return str(part.get("type"))


def _kind(data):
    """A short name for what kind of tokenizer this is, for the error message."""
    text = str(data.get("pre_tokenizer")) + str(data.get("normalizer"))
    if data.get("model", {}).get("byte_fallback") or "Metaspace" in text or "▁" in text:
        return "a SentencePiece-style BPE (as Llama 2, Mistral, TinyLlama)"
    if "Split" in text:
        return "a byte-level BPE with its own pre-tokenizer regex (as Llama 3, Qwen2)"
    return "a BPE tokenizer"


def check_byte_level_bpe(data, source):
    """Raise `ConfigError` naming the part of `tokenizer.json` (parsed: `data`) that tfllm cannot reproduce."""
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
    if model.get("ignore_merges"):
        refuse("model.ignore_merges", "true")
    if data.get("normalizer"):
        refuse("normalizer", _describe(data["normalizer"]))
    pre = data.get("pre_tokenizer")
    if not (isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False)):
        refuse("pre_tokenizer", _describe(pre))
