"""Tokenizers in and out of model folders: tfllm's own, Hugging Face and Google BERT layouts.

A tfllm folder describes its tokenizer in the `"tokenizer"` entry of
`config.json` (type and settings) and keeps its files beside it, named
relative to the folder so that the folder can move:

| type | files | class |
| --- | --- | --- |
| wordpiece | vocab.txt | `WordPieceTokenizer` |
| bpe | vocab.json, merges.txt | `BytePairTokenizer` |
| char | (characters in config.json) | `CharTokenizer` |
| bpe (with `split`) | vocab.json, merges.txt | `RegexBytePairTokenizer` (Llama 3, Qwen2) |
| sentencepiece | spm.model | keras-hub `SentencePieceTokenizer` |

Hugging Face folders (vocab.txt / vocab.json + merges.txt / tokenizer.json /
tokenizer.model) and Google BERT folders (vocab.txt) are read as published.
"""

import json
import os

import keras_hub
import tensorflow as tf

from tfllm.errors import ConfigError
from tfllm.hub import resolve_model_path
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.char_tokenizer import CharTokenizer
from tfllm.tokenizers.hf_tokenizer_json import SENTENCE_PIECE_MODEL
from tfllm.tokenizers.hf_tokenizer_json import byte_level_settings
from tfllm.tokenizers.hf_tokenizer_json import is_sentence_piece_style
from tfllm.tokenizers.regex_byte_pair import RegexBytePairTokenizer
from tfllm.tokenizers.sentence_piece import MetaspaceSentencePieceTokenizer
from tfllm.tokenizers.sentence_piece import load_sentence_piece
from tfllm.tokenizers.word_piece import WordPieceTokenizer
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import save_vocabulary

CONFIG = "config.json"
SENTENCE_PIECE_FILE = "spm.model"


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def save_tokenizer(tokenizer, folder, source_file=None):
    """Write `tokenizer`'s files into `folder`; returns its config.json entry (type + settings).

    `tokenizer` is a WordPiece, BytePair, Char or SentencePiece tokenizer, or
    anything holding one as `.tokenizer` (a `BertPreprocessor`). A
    SentencePiece tokenizer's model is `source_file` (copied in) or else the
    serialized model it holds.
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    folder = os.fspath(folder)
    tf.io.gfile.makedirs(folder)
    if isinstance(tokenizer, WordPieceTokenizer):
        save_vocabulary(tokenizer.vocabulary, os.path.join(folder, "vocab.txt"))
        return dict(type="wordpiece", lowercase=tokenizer.bert_lowercase,
                    strip_accents=tokenizer.bert_strip_accents, split_on_cjk=tokenizer.split_on_cjk)
    if isinstance(tokenizer, BytePairTokenizer):
        save_byte_pair_vocabulary(dict(tokenizer.vocabulary), list(tokenizer.merges), folder)
        spec = dict(type="bpe", special_tokens=tokenizer.special_token_strings)
        if isinstance(tokenizer, RegexBytePairTokenizer):
            spec.update(split=tokenizer.split, normalization=tokenizer.normalization,
                        ignore_merges=tokenizer.ignore_merges)
        return spec
    if isinstance(tokenizer, CharTokenizer):
        return dict(type="char", vocabulary=list(tokenizer.vocabulary))
    if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
        target = os.path.join(folder, SENTENCE_PIECE_FILE)
        if source_file is None and isinstance(getattr(tokenizer, "proto", None), bytes):
            with tf.io.gfile.GFile(target, "wb") as f:
                f.write(tokenizer.proto)
        elif source_file is None:
            raise TypeError("saving a SentencePiece tokenizer needs source_file=<its .model file>")
        elif os.path.abspath(os.fspath(source_file)) != os.path.abspath(target):
            tf.io.gfile.copy(os.fspath(source_file), target, overwrite=True)
        return dict(type="sentencepiece", file=SENTENCE_PIECE_FILE,
                    metaspace=isinstance(tokenizer, MetaspaceSentencePieceTokenizer))
    raise TypeError(f"cannot save a {type(tokenizer).__name__} tokenizer")


def load_tokenizer(path, **overrides):
    """The tokenizer of a tfllm, Hugging Face or Google model folder.

    tfllm folders: the `"tokenizer"` entry of config.json. Otherwise WordPiece
    (vocab.txt; lower-casing, accent stripping and CJK splitting from
    `tokenizer.json`'s normalizer or `tokenizer_config.json`), GPT-2
    byte-level BPE (vocab.json + merges.txt, or a BPE `tokenizer.json`; special
    tokens from `tokenizer.json` or else `tokenizer_config.json`), Llama 3 /
    Qwen2 byte-level BPE (`tokenizer.json`) or SentencePiece (Llama 2,
    Mistral: `tokenizer.model`); a `tokenizer.json` of another kind is a
    `ConfigError` naming it: see `tfllm.tokenizers.hf_tokenizer_json`.
    Keyword args override those settings (e.g. `lowercase=False`).
    """
    path = os.fspath(resolve_model_path(path))  # hf://org/name[@revision] -> its folder in the Hub cache

    def file(name):
        return os.path.join(path, name)

    def has(name):
        return tf.io.gfile.exists(file(name))

    spec = _read_json(file(CONFIG)).get("tokenizer") if has(CONFIG) else None
    if spec:
        return tokenizer_from_spec(path, spec, **overrides)
    hf_json = _read_json(file("tokenizer.json")) if has("tokenizer.json") else {}
    model = hf_json.get("model", {})
    if has(SENTENCE_PIECE_MODEL) and (not hf_json or is_sentence_piece_style(hf_json)):
        # What the tokenizer.json was converted from; its Metaspace adds no "▁" before a leading space.
        pre = hf_json.get("pre_tokenizer") or {}
        prepend = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space", True) else "never")
        metaspace = pre.get("type") == "Metaspace" and prepend != "never"
        return load_sentence_piece(file(SENTENCE_PIECE_MODEL), metaspace)
    settings = {}
    if model.get("type") not in (None, "WordPiece"):  # a BPE (or other) tokenizer.json rules over vocab files
        settings = byte_level_settings(hf_json, file("tokenizer.json"))
    if settings.get("split"):
        vocab = dict(model["vocab"], **{t["content"]: t["id"] for t in hf_json.get("added_tokens", [])})
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        return RegexBytePairTokenizer(vocab, merges, **{
            "special_tokens": [t["content"] for t in hf_json.get("added_tokens", [])], **settings, **overrides})
    if (has("vocab.json") and has("merges.txt")) or model.get("type") == "BPE":
        specials = [t["content"] for t in hf_json.get("added_tokens", []) if t.get("special")]
        if has("vocab.json") and has("merges.txt"):
            vocab, merges = file("vocab.json"), file("merges.txt")
        else:
            vocab = model["vocab"]
            merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        if not specials and has("tokenizer_config.json"):
            specials = _configured_special_tokens(_read_json(file("tokenizer_config.json")), vocab)
        return BytePairTokenizer(vocab, merges, **{"special_tokens": specials or None, **overrides})
    if has("vocab.txt") or model.get("type") == "WordPiece":
        vocab = (load_vocabulary(file("vocab.txt")) if has("vocab.txt")
                 else [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])])
        normalizer = hf_json.get("normalizer") or {}
        config = _read_json(file("tokenizer_config.json")) if has("tokenizer_config.json") else {}
        if normalizer.get("type") == "BertNormalizer":
            settings = dict(lowercase=normalizer.get("lowercase", True),
                            strip_accents=normalizer.get("strip_accents"),
                            split_on_cjk=normalizer.get("handle_chinese_chars", True))
        elif "do_lower_case" in config:
            settings = dict(lowercase=config["do_lower_case"], strip_accents=config.get("strip_accents"),
                            split_on_cjk=config.get("tokenize_chinese_chars", True))
        else:
            settings = dict(lowercase=_guess_lowercase(path, vocab))
        return WordPieceTokenizer(vocab, **{**settings, **overrides})
    raise FileNotFoundError(
        f"{path}: no tokenizer found (looked for a \"tokenizer\" entry in {CONFIG}, vocab.json + merges.txt, "
        f"vocab.txt, tokenizer.json, {SENTENCE_PIECE_MODEL})"
    )


def load_tokenizer_if_any(path):
    """The folder's tokenizer, or None if it has no tokenizer files."""
    try:
        return load_tokenizer(path)
    except FileNotFoundError:
        return None


def tokenizer_from_spec(path, spec, **overrides):
    """The tokenizer a tfllm config.json's `"tokenizer"` entry (`spec`) describes, its files in folder `path`."""
    spec = dict(spec)
    kind = spec.pop("type", None)

    def file(name):
        return os.path.join(path, name)

    if kind == "wordpiece":
        return WordPieceTokenizer(load_vocabulary(file("vocab.txt")), **{**spec, **overrides})
    if kind == "bpe" and spec.get("split"):
        return RegexBytePairTokenizer(file("vocab.json"), file("merges.txt"), **{**spec, **overrides})
    if kind == "bpe":
        spec = {k: v for k, v in spec.items() if k not in ("split", "normalization", "ignore_merges")}
        return BytePairTokenizer(file("vocab.json"), file("merges.txt"), **{**spec, **overrides})
    if kind == "char":
        return CharTokenizer(spec["vocabulary"], **overrides)
    if kind == "sentencepiece":
        return load_sentence_piece(file(spec.get("file", SENTENCE_PIECE_FILE)), spec.get("metaspace", False))
    raise ConfigError(f"{file(CONFIG)}: tokenizer type {kind!r} is not one of wordpiece, bpe, char, sentencepiece")


def _configured_special_tokens(config, vocab):
    """The `*_token` entries of a `tokenizer_config.json` that are in the vocabulary (RoBERTa's `<s>`, `<mask>`...)."""
    vocab = vocab if isinstance(vocab, dict) else _read_json(vocab)
    tokens = [v.get("content") if isinstance(v, dict) else v for k, v in config.items() if k.endswith("_token")]
    return list(dict.fromkeys(t for t in tokens if isinstance(t, str) and t in vocab))


def _guess_lowercase(path, vocab):
    """Google folders say "uncased"/"cased" in their name; else: no upper-case word in the vocabulary."""
    name = os.path.basename(os.path.normpath(path)).lower()
    if "uncased" in name:
        return True
    if "cased" in name:
        return False
    return not any(t.lower() != t for t in vocab if not (t.startswith("[") and t.endswith("]")))

