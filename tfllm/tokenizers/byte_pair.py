"""GPT-2 byte-level BPE tokenizer, in-graph, with the exact GPT-2 pre-tokenizer.

Built on keras-hub's `BytePairTokenizer` (its byte-to-unicode table, BPE merge
loop and cache, all TensorFlow ops), so it runs in `tf.data`, a `tf.function`
and a SavedModel that loads with only `tensorflow` and `tensorflow_text`.

What tfllm changes is the word split. GPT-2 splits text with
`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`,
whose lookahead RE2 cannot run; keras-hub approximates it with marker
characters, which breaks on some inputs (runs of mixed whitespace, Unicode
spaces, text containing the marker). Here the lookahead is resolved
explicitly: split into whitespace runs and the rest; a run followed by text
gives up its last character, which (if it is a space) becomes that text's
leading space; then the regex without its lookahead splits the rest. `\\s` is
spelled as Unicode whitespace, as Hugging Face's regex engine reads it.
"""

import json
import os

import keras
import keras_hub
import numpy as np
import regex
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.utils.tensor_utils import preprocessing_function

from tfllm.errors import DataError

END_OF_TEXT = "<|endoftext|>"
# Strings per call of the compiled tokenizer in `encode`.
_ENCODE_BATCH = 1024

# Unicode White_Space, as `\s` in Oniguruma (HF tokenizers) and Python `regex`.
_WS = r"\t\n\x{0B}\f\r\x{85}\p{Z}"
_GPT2_WORD = rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{_WS}\p{{L}}\p{{N}}]+|[{_WS}]+"
# A piece that matches one of these whole is one GPT-2 word already.
_ONE_WORD = rf" ?\p{{L}}+| ?\p{{N}}+|[{_WS}]+"


def split_words(text, special_tokens=()):
    """GPT-2's pre-tokenization of a string tensor [B] -> ragged words [B, None]; special tokens stay whole."""
    specials = "".join(f"{regex.escape(t)}|" for t in special_tokens)
    # tensorflow-text's regex_split stops at a NUL byte: escape NUL (and the
    # escape character) to two non-characters of NUL's class, undone below.
    text = tf.strings.regex_replace(text, "\ufdd0", "\ufdd0\ufdd1")
    text = tf.strings.regex_replace(text, "\x00", "\ufdd0\ufdd2")
    pieces = tf_text.regex_split(text, f"{specials}[{_WS}]+", f"{specials}[{_WS}]+")
    flat = pieces.flat_values
    is_ws = tf.strings.regex_full_match(flat, f"[{_WS}]+")
    is_special = tf.zeros_like(is_ws)
    for token in special_tokens:
        is_special |= tf.equal(flat, token)
    is_text = ~is_ws & ~is_special
    # The lookahead `\s+(?!\S)`: a whitespace run followed by text keeps all
    # but its last character; a last " " joins the text as its leading space.
    n = tf.size(flat)
    following = tf.minimum(tf.range(n) + 1, n - 1)
    row = pieces.value_rowids()
    followed_by_text = (
        (tf.range(n) + 1 < n) & tf.equal(tf.gather(row, following), row) & tf.gather(is_text, following)
    )
    split = is_ws & followed_by_text
    length = tf.strings.length(flat, unit="UTF8_CHAR")
    head = tf.strings.substr(flat, tf.zeros_like(length), length - 1, unit="UTF8_CHAR")
    last = tf.strings.substr(flat, length - 1, tf.ones_like(length), unit="UTF8_CHAR")
    gives_space = split & tf.equal(last, " ")
    takes_space = tf.concat([[False], gives_space[:-1]], axis=0)[:n]
    first = tf.where(split, head, tf.where(takes_space, tf.strings.join([" ", flat]), flat))
    second = tf.where(split & ~gives_space, last, tf.fill(tf.shape(flat), ""))
    words = tf.RaggedTensor.from_row_splits(
        tf.reshape(tf.stack([first, second], axis=1), [-1]), pieces.row_splits * 2
    )
    words = tf.ragged.boolean_mask(words, tf.not_equal(words, ""))
    pattern = specials + _GPT2_WORD
    # A special token made of letters or digits could hide in a one-word piece.
    if any(regex.fullmatch(r"[\p{L}\p{N}\s]+", t) for t in special_tokens):
        words = tf_text.regex_split(words, pattern, pattern).merge_dims(1, 2)
    else:
        words = _split_pieces(words, pattern)
    words = tf.strings.regex_replace(words, "\ufdd0\ufdd2", "\x00")
    return tf.strings.regex_replace(words, "\ufdd0\ufdd1", "\ufdd0")


def _split_pieces(pieces, pattern):
    """`regex_split(pieces, pattern, pattern).merge_dims(1, 2)`, for ragged `pieces` [B, None].

    regex_split costs a few microseconds per string, which made it most of
    the tokenizer's time; most pieces (" the", "Romeo", a line break) are one
    word already, so only the others are split, and the results are stitched
    back in order.
    """
    flat = pieces.flat_values
    whole = tf.strings.regex_full_match(flat, _ONE_WORD)
    whole_index, rest_index = tf.where(whole)[:, 0], tf.where(~whole)[:, 0]
    rest = tf_text.regex_split(tf.gather(flat, rest_index), pattern, pattern)
    lengths = tf.tensor_scatter_nd_update(
        tf.ones(tf.shape(flat, out_type=tf.int64), tf.int64), rest_index[:, None], rest.row_lengths())
    starts = tf.cumsum(lengths, exclusive=True)
    rest_rows = rest.value_rowids()
    rest_positions = (tf.gather(starts, tf.gather(rest_index, rest_rows))
                      + tf.range(tf.size(rest.flat_values, out_type=tf.int64))
                      - tf.gather(rest.row_splits, rest_rows))
    words = tf.dynamic_stitch(
        [tf.cast(tf.gather(starts, whole_index), tf.int32), tf.cast(rest_positions, tf.int32)],
        [tf.gather(flat, whole_index), rest.flat_values],
    )
    piece_splits = tf.concat([[0], tf.cumsum(lengths)], axis=0)
    return tf.RaggedTensor.from_row_splits(words, tf.gather(piece_splits, pieces.row_splits))


def read_merges(path):
    """merges.txt -> list of "a b" rules (the "#version" header and blank lines dropped)."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    return [line for line in lines if line and not line.startswith("#version")]


def read_vocabulary(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@keras.saving.register_keras_serializable(package="tfllm")
class BytePairTokenizer(keras_hub.tokenizers.BytePairTokenizer):
    """GPT-2 byte-level BPE: ids identical to Hugging Face's GPT-2 tokenizer for the same files.

    Args:
        vocabulary: dict token -> id, or the path of a `vocab.json`.
        merges: list of "a b" merge rules, or the path of a `merges.txt`.
        sequence_length: int or None. If set, outputs are dense, padded with 0
            and truncated; else ragged.
        special_tokens: strings matched whole in the text and never split
            (default: "<|endoftext|>" if the vocabulary has it, as GPT-2).

    Example:
    >>> tokenizer = BytePairTokenizer("gpt2/vocab.json", "gpt2/merges.txt")
    >>> ids = tokenizer(["Hello world"])        # ragged int32 [1, None]
    >>> tokenizer.detokenize(ids)               # [b"Hello world"]
    """

    def __init__(self, vocabulary=None, merges=None, sequence_length=None, special_tokens=None, **kwargs):
        vocabulary_source = os.fspath(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else "vocabulary"
        merges_source = os.fspath(merges) if isinstance(merges, (str, os.PathLike)) else "merges"
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(vocabulary)
        if isinstance(merges, (str, os.PathLike)):
            merges = read_merges(merges)
        merges = [m for m in (merges or []) if not m.startswith("#version")]
        # keras-hub cannot build its lookup tables from nothing (a raw HashTableV2 error): say which file is empty.
        if vocabulary is not None and not vocabulary:
            raise DataError(f"{vocabulary_source}: no tokens; expected a GPT-2 style vocab.json "
                            "({\"token\": id, ...}; tools/build_vocab.py --type=bpe writes one)")
        if vocabulary is not None and not merges:
            raise DataError(f"{merges_source}: no merge rules; expected GPT-2 style merges.txt lines \"a b\" "
                            "(tools/build_vocab.py --type=bpe writes one)")
        for key in ("add_prefix_space", "unsplittable_tokens", "_allow_python_workflow"):
            kwargs.pop(key, None)
        if special_tokens is None:
            special_tokens = [END_OF_TEXT] if vocabulary and END_OF_TEXT in vocabulary else []
        self.special_token_strings = list(special_tokens)
        super().__init__(
            vocabulary=vocabulary, merges=merges, sequence_length=sequence_length,
            unsplittable_tokens=list(special_tokens), _allow_python_workflow=False, **kwargs,
        )


    @property
    def end_token_id(self):
        """Id of "<|endoftext|>" (the document separator when packing LM data), or None."""
        if END_OF_TEXT in self.special_token_strings:
            return self.token_to_id(END_OF_TEXT)
        return None

    def encode(self, text):
        """A Python string -> numpy int32 ids; a list of strings -> a list of them.

        For building data streams. Pass a list rather than one string per
        call: each call runs the tokenizer graph once per `_ENCODE_BATCH`
        strings, and the BPE merges once per new word.
        """
        if isinstance(text, str):
            return self.encode([text])[0]
        self._maybe_initialized_tf()
        ids = []
        for start in range(0, len(text), _ENCODE_BATCH):
            tokens = self._compiled()(tf.constant(list(text[start:start + _ENCODE_BATCH]), tf.string))
            if self.sequence_length:
                ids += list(tokens.to_tensor(shape=[None, self.sequence_length]).numpy().astype(np.int32))
            else:
                ids += np.split(tokens.flat_values.numpy().astype(np.int32), tokens.row_splits.numpy()[1:-1])
        return ids

    # AutoGraph has nothing to convert here (no Python control flow on
    # tensors; the merge loop is a tf.while_loop), but converting this and the
    # keras-hub code below it took 13 s of `Dataset.map(tokenizer)` on a
    # 2-core machine, 10x the time to tokenize Tiny Shakespeare.
    @tf.autograph.experimental.do_not_convert
    @preprocessing_function
    def _tokenize_tf(self, inputs):
        self._maybe_initialized_tf()
        inputs = tf.convert_to_tensor(inputs)
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        if inputs.shape.rank != 1:
            raise ValueError(f"tokenize() takes a string or a 1-D batch of strings, got {inputs}")
        tokens = self._compiled()(inputs) if tf.executing_eagerly() else self._tokenize_batch(inputs)
        if self.sequence_length:
            tokens = tokens.to_tensor(shape=[None, self.sequence_length])
        return tf.squeeze(tokens, 0) if unbatched else tokens

    def _compiled(self):
        """`_tokenize_batch` as one graph, traced once, for eager calls.

        Run eagerly, keras-hub's merge loop wraps its step in a new
        tf.function on every call, traced anew each time (about 1 s a call:
        20 KB of Tiny Shakespeare took 3 minutes one document at a time); in
        a graph it is a plain tf.while_loop.
        """
        if getattr(self, "_tokenize_graph", None) is None:
            self._tokenize_graph = tf.function(
                self._tokenize_batch, input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False)  # As `_tokenize_tf`: nothing to convert, seconds to find that out.
        return self._tokenize_graph

    def _tokenize_batch(self, inputs):
        """Strings [B] -> ragged ids [B, None]: keras-hub's `_tokenize_tf` with `split_words` as the pre-tokenizer."""
        words = split_words(inputs, self.special_token_strings)
        flat_words = words.flat_values
        cached = self.cache.lookup(flat_words)
        unseen = tf.equal(cached, "")

        def merge_unseen():
            # Each new word once: a batch repeats its new words many times.
            new_words, _ = tf.unique(tf.boolean_mask(flat_words, unseen))
            self._bpe_merge_and_update_cache_tf(new_words)
            return self.cache.lookup(flat_words)

        merged = tf.cond(tf.reduce_any(unseen), merge_unseen, lambda: cached)
        tokens = self.token_to_id_map.lookup(tf.strings.split(merged, sep=" "))
        return tf.RaggedTensor.from_row_splits(
            tokens.flat_values, tf.gather(tokens.row_splits, words.row_splits)
        )

    def get_config(self):
        config = super().get_config()
        for key in ("add_prefix_space", "unsplittable_tokens"):
            config.pop(key, None)
        config.update(vocabulary=dict(self.vocabulary), merges=list(self.merges),
                      special_tokens=self.special_token_strings)
        return config


def train_byte_pair_vocabulary(texts, vocab_size, min_frequency=2, special_tokens=(END_OF_TEXT,)):
    """Learns a GPT-2-style byte-level BPE vocabulary with HF `tokenizers`; returns (vocab dict, merges)."""
    from tokenizers import ByteLevelBPETokenizer  # noqa: PLC0415  (HF tokenizers: optional, only to train a vocabulary)

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=min_frequency,
                                special_tokens=list(special_tokens))
    model = json.loads(trainer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], merges


def save_byte_pair_vocabulary(vocabulary, merges, directory):
    """Writes vocab.json and merges.txt (the Hugging Face GPT-2 file formats) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocabulary, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{m}\n" for m in merges))

