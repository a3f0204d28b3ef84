"""Llama 3 / Qwen2 / SmolLM byte-level BPE in-graph: their pre-tokenizer regex, added tokens, NFC, `ignore_merges`.

These `tokenizer.json` files split text with a `Split` regex and then map
bytes with `ByteLevel(use_regex=False)`; the BPE itself is GPT-2's, so the
merge loop, lookup tables and detokenizer are `BytePairTokenizer`'s. Only
the word split differs:

    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}
    | ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+

(Qwen2: `\\p{N}`, one digit a word). SmolLM instead isolates each digit
(`Digits(individual_digits=True)`) and then splits with GPT-2's regex
(`ByteLevel(use_regex=True)`). keras-hub's `Llama3Tokenizer` and
`QwenTokenizer` split with GPT-2's regex in TensorFlow (the Llama 3 regex
only in their Python `tokenizers` path), so their in-graph ids differ from
Hugging Face's on digit runs, "'LL", "(word" and line breaks; hence this.

RE2 has no lookahead for `\\s+(?!\\S)`. It only matters at a run of two or
more whitespace characters (for Llama 3 and Qwen2: without line breaks,
which `\\s*[\\r\\n]+` takes first) that is followed by text:
there the regex takes the run but its last character, and matching starts
again at that character. So the text is cut there first (the matching
after a cut depends only on the text after it) and each piece is split
with the regex whose last two alternatives are one `\\s+`. `\\s` is spelled
as Unicode whitespace, as Hugging Face's regex engine reads it.

Added tokens (`<|begin_of_text|>`, `<|im_start|>`...) are cut out of the
text first and kept whole, as Hugging Face does; the text between them is
normalized (NFC for Qwen2) and split on its own.
"""

import keras
import regex
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode
from tensorflow.python.ops import gen_string_ops

from tfllm.errors import ConfigError
from tfllm.tokenizers.byte_pair import _GPT2_WORD
from tfllm.tokenizers.byte_pair import _WS
from tfllm.tokenizers.byte_pair import BytePairTokenizer

# Whitespace but line breaks: the runs the lookahead acts on.
_BLANK = r"\t\x{0B}\f\x{85}\p{Z}"
# Marks cuts for a string split: a byte that valid UTF-8 text never holds.
_MARK = b"\xff"


def _pattern(digits):
    return (rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{digits}"
            rf"| ?[^{_WS}\p{{L}}\p{{N}}]+[\r\n]*|[{_WS}]*[\r\n]+|[{_WS}]+")


# name -> (the `Split` regex as Hugging Face writes it, the RE2 regex without the lookahead, the
# whitespace of the runs the lookahead acts on).
SPLITS = {
    "llama3": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+", _pattern("{1,3}"), _BLANK),
    "qwen2": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+", _pattern(""), _BLANK),
    # SmolLM: each digit alone, then GPT-2's regex.
    "digits_gpt2": (None, _GPT2_WORD, _WS),
}
NORMALIZATIONS = (None, "NFC")


def _split_marked(marked):
    """Strings [N] with `_MARK` between pieces -> non-empty pieces [M] and row splits [N + 1]."""
    indices, pieces, _ = gen_string_ops.string_split_v2(marked, sep=_MARK)
    kept = tf.reshape(tf.where(tf.not_equal(pieces, "")), [-1])
    rows = tf.gather(indices[:, 0], kept)
    return tf.gather(pieces, kept), tf.searchsorted(
        rows, tf.range(tf.size(marked, out_type=tf.int64) + 1), out_type=tf.int64)


def _rows(splits, values):
    """The row of each of `values` [M], given the row splits [N + 1]."""
    return tf.searchsorted(splits, tf.range(tf.size(values, out_type=tf.int64)), side="right") - 1


@keras.saving.register_keras_serializable(package="tfllm")
class RegexBytePairTokenizer(BytePairTokenizer):
    """Byte-level BPE after a Llama 3 or Qwen2 `Split` regex: ids identical to Hugging Face's `tokenizer.json`.

    Args:
        vocabulary, merges, sequence_length: as `BytePairTokenizer`.
        split: "llama3", "qwen2" or "digits_gpt2" (SmolLM) (`SPLITS`).
        normalization: None or "NFC" (Qwen2), applied to the text between added tokens.
        special_tokens: the added tokens, matched in the text (longest first) and kept whole.
        ignore_merges: a word that is in the vocabulary is that token (Llama 3's `model.ignore_merges`).
    """

    def __init__(self, vocabulary=None, merges=None, sequence_length=None, special_tokens=None, split="llama3",
                 normalization=None, ignore_merges=False, **kwargs):
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}")
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization={normalization!r} is not one of {NORMALIZATIONS}")
        self.split, self.normalization, self.ignore_merges = split, normalization, bool(ignore_merges)
        super().__init__(vocabulary, merges, sequence_length=sequence_length,
                         special_tokens=list(special_tokens or []), **kwargs)

    def _set_vocabulary_and_merges_tf(self, vocabulary, merges):
        super()._set_vocabulary_and_merges_tf(vocabulary, merges)
        self._whole_table = None
        if self.ignore_merges:
            # Token (byte-level characters) -> its raw bytes, the form the words are in.
            to_byte = {u: b for b, u in zip(*bytes_to_unicode())}
            raw, ids = [], []
            for token, token_id in vocabulary.items():
                if all(c in to_byte for c in token):
                    raw.append(b"".join(to_byte[c] for c in token))
                    ids.append(token_id)
            self._whole_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(raw, tf.string), tf.constant(ids, tf.int64)), -1)

    def _whole_word_ids(self, words):
        return self._whole_table.lookup(words) if self._whole_table is not None else None

    def _unescape_words(self, words):
        return words  # nothing escaped: cuts are marked with a byte that UTF-8 text never holds

    def _split_words(self, inputs):
        """Strings [B] -> words [N], row splits [B + 1]: added tokens, normalization, cuts, the regex."""
        specials = sorted(self.special_token_strings, key=len, reverse=True)
        if specials:
            alternation = "|".join(regex.escape(t) for t in specials)
            segments, segment_splits = _split_marked(
                tf.strings.regex_replace(inputs, alternation, _MARK + b"\\0" + _MARK))
            is_special = tf.reduce_any(tf.equal(segments[:, None], tf.constant(specials)[None]), axis=1)
        else:
            segments = inputs
            segment_splits = tf.range(tf.size(inputs, out_type=tf.int64) + 1)
            is_special = tf.zeros(tf.shape(inputs), tf.bool)
        if self.normalization:
            segments = tf.where(is_special, segments, tf_text.normalize_utf8(segments, self.normalization))
        _, pattern, blank = SPLITS[self.split]
        if self.split == "digits_gpt2":  # each digit a segment of its own
            digits = tf.strings.regex_replace(segments, r"\p{N}", _MARK + b"\\0" + _MARK)
            segments, digit_splits = _split_marked(tf.where(is_special, segments, digits))
            is_special = tf.gather(is_special, _rows(digit_splits, segments))
            segment_splits = tf.gather(digit_splits, segment_splits)
        # Cut before the last character of each whitespace run of 2+ that text follows.
        cut = tf.strings.regex_replace(segments, f"([{blank}]+)([{blank}][^{_WS}])", b"\\1" + _MARK + b"\\2")
        parts, part_splits = _split_marked(tf.where(is_special, segments, cut))
        marked = tf.where(tf.gather(is_special, _rows(part_splits, parts)), tf.strings.join([_MARK, parts, _MARK]),
                          tf.strings.regex_replace(parts, pattern, _MARK + b"\\0" + _MARK))
        words, word_splits = _split_marked(marked)
        return words, tf.gather(word_splits, tf.gather(part_splits, segment_splits))

    def get_config(self):
        config = super().get_config()
        config.update(split=self.split, normalization=self.normalization, ignore_merges=self.ignore_merges)
        return config

