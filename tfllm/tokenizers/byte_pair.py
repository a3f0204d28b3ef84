"""GPT-2 byte-level BPE tokenizer, in-graph, with the exact GPT-2 pre-tokenizer.

A keras-hub `BytePairTokenizer` (its layer, config and detokenizer) whose
tokenizer is core TensorFlow ops, so it runs in `tf.data`, a `tf.function` and
a SavedModel that loads with only `tensorflow`.

tfllm changes two things. The merges run on integer ids, once per distinct
word of a batch, in a plain tf.while_loop (`_bpe`): keras-hub's loop over
strings, converted by AutoGraph, took longer to trace than tokenizing all of
Tiny Shakespeare. And the word split. GPT-2 splits text with
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
from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode
from keras_hub.src.tokenizers.byte_pair_tokenizer import create_static_hashtable
from keras_hub.src.utils.tensor_utils import preprocessing_function
from tensorflow.python.ops import gen_string_ops

from tfllm.errors import ConfigError
from tfllm.errors import DataError
from tfllm.files import read_bytes

END_OF_TEXT = "<|endoftext|>"
# Strings per call of the compiled tokenizer in `encode`.
_ENCODE_BATCH = 1024
# `_bpe`'s merge table value for a pair of ids without a rule.
_NO_MERGE = np.iinfo(np.int64).max

# Unicode White_Space, as `\s` in Oniguruma (HF tokenizers) and Python `regex`.
_WS = r"\t\n\x{0B}\f\r\x{85}\p{Z}"
_GPT2_WORD = rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{_WS}\p{{L}}\p{{N}}]+|[{_WS}]+"
# A piece that matches one of these whole is one GPT-2 word already.
_ONE_WORD = rf" ?\p{{L}}+| ?\p{{N}}+|[{_WS}]+"


def split_words(text, special_tokens=()):
    """GPT-2's pre-tokenization of a string tensor [B] -> ragged words [B, None]; special tokens stay whole."""
    words, row_splits = _split_words_flat(text, special_tokens)
    return tf.RaggedTensor.from_row_splits(words, row_splits, validate=False)


def _split_words_flat(text, special_tokens=(), unescape=True):
    """`split_words` as flat words [N] and row splits [B + 1] (int64).

    With `unescape=False` the words keep NUL and U+FDD0 escaped (see below),
    for `_unescape` to undo on fewer strings: the distinct words.

    Flat tensors rather than ragged ones because each validated RaggedTensor
    adds three assertions (six tf.functions) to the graph: the ragged version
    took 1.4 s to trace, as long as tokenizing all of Tiny Shakespeare.
    """
    specials = "".join(f"{regex.escape(t)}|" for t in special_tokens)
    # `_regex_split` marks its splits with NUL: escape NUL (and the escape
    # character) to two non-characters of NUL's class, undone by `_unescape`.
    text = tf.strings.regex_replace(text, "\ufdd0", "\ufdd0\ufdd1")
    text = tf.strings.regex_replace(text, "\x00", "\ufdd0\ufdd2")
    flat, row_splits = _regex_split(text, f"{specials}[{_WS}]+")
    is_ws = tf.strings.regex_full_match(flat, f"[{_WS}]+")
    is_special = tf.zeros_like(is_ws)
    for token in special_tokens:
        is_special |= tf.equal(flat, token)
    is_text = ~is_ws & ~is_special
    # The lookahead `\s+(?!\S)`: a whitespace run followed by text keeps all
    # but its last character; a last " " joins the text as its leading space.
    n = tf.size(flat, out_type=tf.int64)
    position = tf.range(n)
    following = tf.minimum(position + 1, n - 1)
    row = tf.searchsorted(row_splits, position, side="right")
    followed_by_text = (position + 1 < n) & tf.equal(tf.gather(row, following), row) & tf.gather(is_text, following)
    split = is_ws & followed_by_text
    length = tf.strings.length(flat, unit="UTF8_CHAR")
    head = tf.strings.substr(flat, tf.zeros_like(length), length - 1, unit="UTF8_CHAR")
    last = tf.strings.substr(flat, length - 1, tf.ones_like(length), unit="UTF8_CHAR")
    gives_space = split & tf.equal(last, " ")
    takes_space = tf.pad(gives_space, [[1, 0]])[:-1]
    first = tf.where(split, head, tf.where(takes_space, tf.strings.join([" ", flat]), flat))
    second = tf.where(split & ~gives_space, last, tf.fill(tf.shape(flat), ""))
    words = tf.reshape(tf.stack([first, second], axis=1), [-1])
    kept = tf.not_equal(words, "")
    words = _mask(words, kept)
    row_splits = tf.gather(_cumsum0(kept), row_splits * 2)
    pattern = specials + _GPT2_WORD
    # A special token made of letters or digits could hide in a one-word piece.
    if any(regex.fullmatch(r"[\p{L}\p{N}\s]+", t) for t in special_tokens):
        words, piece_splits = _regex_split(words, pattern)
    else:
        words, piece_splits = _split_pieces(words, pattern)
    return (_unescape(words) if unescape else words), tf.gather(piece_splits, row_splits)


def _unescape(words):
    """Undoes `_split_words_flat`'s escape of NUL and U+FDD0."""
    words = tf.strings.regex_replace(words, "\ufdd0\ufdd2", "\x00")
    return tf.strings.regex_replace(words, "\ufdd0\ufdd1", "\ufdd0")


def _mask(values, keep):
    """`tf.boolean_mask(values, keep)` for 1-D `keep`, in 3 ops rather than boolean_mask's ~25 (faster to trace)."""
    return tf.gather(values, tf.reshape(tf.where(keep), [-1]))


def _cumsum0(counts):
    """[0, c0, c0 + c1, ...] as int64: the row splits of rows with `counts` items (bools count 1)."""
    return tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.cast(counts, tf.int64))], axis=0)


def _regex_split(strings, pattern):
    """`tf_text.regex_split(strings, pattern, pattern)` for strings [N] without NUL: pieces [M], row splits [N + 1].

    Marks each match with NULs (regex_replace) and splits there: 3x faster
    than tensorflow-text's op, which wraps the pattern in a capturing group,
    so RE2 has to run its slow submatch engine on every string (1.0 s vs
    0.34 s for the 280,000 words of Tiny Shakespeare). `pattern` must have
    no capturing group and match no empty string; the text has no NUL
    (`_split_words_flat` escapes them).
    """
    marked = tf.strings.regex_replace(strings, pattern, "\x00\\0\x00")
    indices, pieces, _ = gen_string_ops.string_split_v2(marked, sep="\x00")
    kept = tf.not_equal(pieces, "")
    rows = _mask(indices[:, 0], kept)
    return _mask(pieces, kept), tf.searchsorted(
        rows, tf.range(tf.size(strings, out_type=tf.int64) + 1), out_type=tf.int64)


def _split_pieces(pieces, pattern):
    """`_regex_split(pieces, pattern)` for flat `pieces` [N]: split words and their row splits [N + 1].

    regex_split costs a few microseconds per string, which made it most of
    the tokenizer's time; most pieces (" the", "Romeo", a line break) are one
    word already, so only the others are split, and the results are stitched
    back in order.
    """
    whole = tf.strings.regex_full_match(pieces, _ONE_WORD)
    whole_index, rest_index = tf.reshape(tf.where(whole), [-1]), tf.reshape(tf.where(~whole), [-1])
    rest, rest_splits = _regex_split(tf.gather(pieces, rest_index), pattern)
    lengths = tf.tensor_scatter_nd_update(
        tf.ones(tf.shape(pieces, out_type=tf.int64), tf.int64), rest_index[:, None], rest_splits[1:] - rest_splits[:-1])
    starts = tf.cumsum(lengths, exclusive=True)
    rest_rows = tf.searchsorted(rest_splits, tf.range(tf.size(rest, out_type=tf.int64)), side="right") - 1
    rest_positions = (tf.gather(starts, tf.gather(rest_index, rest_rows))
                      + tf.range(tf.size(rest, out_type=tf.int64)) - tf.gather(rest_splits, rest_rows))
    words = tf.dynamic_stitch(
        [tf.cast(tf.gather(starts, whole_index), tf.int32), tf.cast(rest_positions, tf.int32)],
        [tf.gather(pieces, whole_index), rest],
    )
    return words, _cumsum0(lengths)


def read_merges(path):
    """merges.txt -> list of "a b" rules (the "#version" header and blank lines dropped)."""
    lines = [line.rstrip("\r") for line in read_bytes(path).decode("utf-8").split("\n")]
    return [line for line in lines if line and not line.startswith("#version")]


def read_vocabulary(path):
    """vocab.json -> {token: id}."""
    try:
        vocabulary = json.loads(read_bytes(path).decode("utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{os.fspath(path)}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(vocabulary, dict):
        raise DataError(f"{os.fspath(path)}: expected a JSON object of token -> id (GPT-2's vocab.json), found a "
                        f"{type(vocabulary).__name__}")
    return vocabulary


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

    def _set_vocabulary_and_merges_tf(self, vocabulary, merges):
        """Builds the lookup tables, once per vocabulary (never inside a traced function).

        keras-hub's tables (a merge rank per "a b" string, a cache of merged
        words, token string -> id) are replaced by integer ones for `_bpe`: the
        id of each byte, and per pair of ids its merge rank and merged id.
        Detokenizing keeps keras-hub's `id_to_token_map` and `unicode2byte`.
        """
        self.vocabulary, self.merges = vocabulary.copy(), merges
        merge_pairs = [str(merge).split(" ") for merge in merges if "#version:" not in merge.lstrip()]
        for a, b in merge_pairs:
            if a not in vocabulary or b not in vocabulary or a + b not in vocabulary:
                raise DataError(f"Merge rule '{a} {b}' contains token '{a}' or '{b}', or makes '{a + b}', "
                                 "that is not in the vocabulary.")
        tokens, ids = list(vocabulary), list(vocabulary.values())
        byte_list, unicode_list = bytes_to_unicode()
        self.unicode2byte = create_static_hashtable(unicode_list, byte_list, default="")
        self.id_to_token_map = create_static_hashtable(ids, tokens, default="")
        # `_bpe`'s ids: the vocabulary's and two more, for after a word's end
        # and for a byte or special token missing from the vocabulary (-1 in
        # the output, as keras-hub's lookup gives). Pair (a, b)'s key is
        # a * _key_base + b.
        self._pad, self._unknown, self._key_base = max(ids) + 1, max(ids) + 2, max(ids) + 3
        self._byte_ids = tf.constant(
            [vocabulary.get(char, self._unknown) for _, char in sorted(zip(byte_list, unicode_list))], tf.int64)
        # Rank in the high bits, so the smallest value is the first rule; a
        # rule listed twice keeps its last rank, as in Hugging Face's BPE.
        rules = {(vocabulary[a], vocabulary[b]): (rank << 32) | vocabulary[a + b]
                 for rank, (a, b) in enumerate(merge_pairs)}
        self._merge_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([a * self._key_base + b for a, b in rules], tf.int64),
                tf.constant(list(rules.values()), tf.int64)),
            default_value=_NO_MERGE)
        self._special_ids = [vocabulary.get(token, self._unknown) for token in self.special_token_strings]
        self._tokenize_graph = None

    def _maybe_initialized_tf(self):
        if getattr(self, "_merge_table", None) is None:
            self._set_vocabulary_and_merges_tf(self.vocabulary, self.merges)

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
        strings, and the BPE merges once per distinct word in them.
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

    # `Dataset.map` converts the function it is given with AutoGraph, which
    # has nothing to convert here (no Python control flow on tensors) but took
    # 13 s to convert keras-hub's merge loop, and 0.15 s for keras-hub's
    # `tokenize` (as long as tracing the tokenizer).
    @tf.autograph.experimental.do_not_convert
    def tokenize(self, inputs):
        return super().tokenize(inputs)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, *args, training=None, **kwargs):
        return super().call(inputs, *args, training=training, **kwargs)

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
        """`_tokenize_batch` as one graph, traced once, for eager calls (run op by op it is slower)."""
        if getattr(self, "_tokenize_graph", None) is None:
            self._tokenize_graph = tf.function(
                self._tokenize_batch, input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False)  # As `_tokenize_tf`: nothing to convert.
        return self._tokenize_graph

    def _tokenize_batch(self, inputs):
        """Strings [B] -> ragged ids [B, None]: `split_words`, then BPE of each distinct word once.

        A batch of 1,024 Tiny Shakespeare documents has ~40,000 words but
        ~4,800 distinct ones: only those are merged (`tf.unique`), and their
        ids gathered back. Merging each batch's distinct words took 0.09 s CPU
        for the whole file, its 15,056 distinct words once 0.04 s: a cache
        across batches, as keras-hub keeps, could save at most the difference
        and would cost a lookup per word.
        """
        words, row_splits = self._split_words(inputs)
        distinct, index = tf.unique(words)
        ids, id_splits = self._bpe(self._unescape_words(distinct))
        # Word w's ids are ids[id_splits[index[w]]:id_splits[index[w] + 1]].
        counts = tf.gather(id_splits[1:] - id_splits[:-1], index)
        word_splits = _cumsum0(counts)
        position = tf.range(word_splits[-1])
        word = tf.searchsorted(word_splits, position, side="right") - 1
        source = tf.gather(id_splits, tf.gather(index, word)) + position - tf.gather(word_splits, word)
        # The merge loop's ids have no static shape; ragged consumers (keras-hub's packers) need rank 1.
        values = tf.reshape(tf.gather(ids, source), [-1])
        return tf.RaggedTensor.from_row_splits(values, tf.gather(word_splits, row_splits), validate=False)

    def _split_words(self, inputs):
        """Strings [B] -> flat words [N] (still escaped, see `_unescape_words`) and row splits [B + 1]."""
        return _split_words_flat(inputs, self.special_token_strings, unescape=False)

    def _unescape_words(self, words):
        return _unescape(words)

    def _whole_word_ids(self, words):
        """Ids [U] of words that are one token as they stand, else -1; None if all words are merged.

        For `tokenizer.json`'s `ignore_merges` (Llama 3): a word in the
        vocabulary is that token, whatever the merges would give.
        """
        return None

    def _bpe(self, words):
        """Byte-level BPE of words [U] -> their token ids, flat, and row splits [U + 1].

        Words are rows of a dense [U, bytes + 1] matrix of token ids (`_pad`
        after the end). Each step merges, in every row that still can, the pair of
        the lowest rank (the leftmost if it occurs twice), as Hugging Face
        and OpenAI's GPT-2 encoder do; rows that cannot merge leave the loop.

        Replaces keras-hub's merge loop, which is a tf.function that AutoGraph
        converts and which works on strings with ragged ops: tracing it took
        ~2 s of the 2.3 s that Tiny Shakespeare took in `tf.data` (0.47 MB/s,
        idle 2-core machine); this loop is plain ops on integers, traced in
        milliseconds, and merges the file's distinct words in 0.04 s CPU.
        """
        length = tf.strings.length(words)
        # A column more than the longest word, so that every row has a pair
        # (argmin takes no empty axis), even in an empty batch.
        width = tf.maximum(tf.reduce_max(length), 1) + 1
        column = tf.range(width)
        ids = tf.gather(self._byte_ids, tf.cast(tf.io.decode_raw(words, tf.uint8, fixed_length=width), tf.int32))
        ids = tf.where(column < length[:, None], ids, self._pad)
        for token, token_id in zip(self.special_token_strings, self._special_ids):
            special = tf.where(tf.equal(column, 0), tf.constant(token_id, tf.int64), self._pad)
            ids = tf.where(tf.equal(words, token)[:, None], special, ids)
        whole = self._whole_word_ids(words)
        if whole is not None:
            ids = tf.where((whole >= 0)[:, None], tf.where(tf.equal(column, 0)[None], whole[:, None], self._pad), ids)

        def merge_step(step, ids, rows, done_rows, done_ids):
            rules = self._merge_table.lookup(ids[:, :-1] * self._key_base + ids[:, 1:])
            # Values are rank << 32 | merged id, so the smallest is the first
            # rule; TensorFlow's argmin (Eigen's) takes the leftmost of equals.
            at = tf.math.argmin(rules, axis=1, output_type=tf.int32)
            best = tf.gather(rules, at, batch_dims=1)
            done = tf.equal(best, _NO_MERGE)
            done_rows, done_ids = done_rows.write(step, _mask(rows, done)), done_ids.write(step, _mask(ids, done))
            going = tf.reshape(tf.where(~done), [-1])
            ids, rows, at, best = (tf.gather(t, going) for t in (ids, rows, at, best))
            # Pair (at, at + 1) -> one id at `at`; the rest of the row moves left.
            shifted = tf.pad(ids[:, 1:], [[0, 0], [0, 1]], constant_values=self._pad)
            ids = tf.where(column <= at[:, None], ids, shifted)
            ids = tf.tensor_scatter_nd_update(
                ids, tf.stack([tf.range(tf.size(at)), at], axis=1), tf.bitwise.bitwise_and(best, 0xFFFFFFFF))
            return step + 1, ids, rows, done_rows, done_ids

        rows = tf.range(tf.shape(ids)[0])
        # Each starts with an empty entry: concat of an empty TensorArray fails (its width is unknown).
        finished = [tf.TensorArray(t.dtype, size=0, dynamic_size=True, infer_shape=False).write(0, t[:0])
                    for t in (rows, ids)]
        _, _, _, done_rows, done_ids = tf.while_loop(
            lambda step, ids, rows, done_rows, done_ids: tf.size(rows) > 0, merge_step, [1, ids, rows, *finished])
        # Rows left the loop in the order they finished: put them back in order.
        merged = tf.gather(done_ids.concat(), tf.math.invert_permutation(done_rows.concat()))
        kept = tf.not_equal(merged, self._pad)
        ids = tf.cast(tf.gather_nd(merged, tf.where(kept)), tf.int32)
        ids = tf.where(tf.equal(ids, self._unknown), -1, ids)
        return ids, _cumsum0(tf.reduce_sum(tf.cast(kept, tf.int64), axis=1))

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
    directory = os.fspath(directory)
    if tf.io.gfile.exists(directory) and not tf.io.gfile.isdir(directory):
        raise ConfigError(f"{directory} is a file; vocab.json and merges.txt are written into a folder")
    tf.io.gfile.makedirs(directory)  # gfile: a run folder may be on gs://
    with tf.io.gfile.GFile(os.path.join(directory, "vocab.json"), "wb") as f:
        f.write(json.dumps(vocabulary, ensure_ascii=False).encode("utf-8"))
    with tf.io.gfile.GFile(os.path.join(directory, "merges.txt"), "wb") as f:
        f.write(("#version: 0.2\n" + "".join(f"{m}\n" for m in merges)).encode("utf-8"))

