"""Turns raw strings into the input dict of the `Bert` backbone."""

import keras
import keras_hub
import tensorflow as tf

# keras-hub's own preprocessors wrap `call` with this: tensors stay `tf` inside
# (no eager conversion of ragged outputs to Python lists between layers).
from keras_hub.src.utils.tensor_utils import preprocessing_function

from tfllm.errors import ConfigError
from tfllm.models.bert.segment_packing import pack_segments
from tfllm.tokenizers.saving import load_tokenizer
from tfllm.tokenizers.word_piece import CLS
from tfllm.tokenizers.word_piece import PAD
from tfllm.tokenizers.word_piece import SEP
from tfllm.tokenizers.word_piece import WordPieceTokenizer
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import require_tokens


@keras.saving.register_keras_serializable(package="tfllm")
class BertPreprocessor(keras.layers.Layer):
    """WordPiece-tokenizes and packs one or two segments for BERT.

    `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, segment ids 0 for `a` (and its
    `[CLS]`/`[SEP]`) and 1 for `b`, truncated to `sequence_length` (a pair
    longest-first, as BERT and Hugging Face do), padded with `[PAD]` (id 0).

    Args:
        vocabulary: list of WordPiece tokens or a vocabulary file path.
        sequence_length: int, length of the packed (padded) output.
        lowercase: bool. Lower-case text (BERT uncased).
        strip_accents: bool or None. None follows `lowercase`.
        truncate: how a pair is cut to fit, "longest_first" (BERT, and
            exactly Hugging Face's fast tokenizers: cut the longer segment
            until both are as long, then both, an odd token left to the
            longer, or to `b` on a tie), "round_robin" (keras-hub: tokens are
            taken from each segment in turn, an odd one to `a`) or
            "waterfall" (cut the last segment first).

    Call args:
        x: a string tensor `[B]` (or a list of strings), or a tuple of two.

    Returns a dict of `token_ids` int32 `[B, L]`, `segment_ids` int32 `[B, L]`,
    `padding_mask` bool `[B, L]`.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]
    >>> pre = BertPreprocessor(vocab, sequence_length=6)
    >>> pre(["Good film!"])["token_ids"].numpy()
    array([[2, 5, 6, 1, 3, 0]], dtype=int32)
    """

    # Special tokens between `a` and `b`: `[SEP]` (RoBERTa: `</s></s>`).
    separator_length = 1
    # Segment ids 0 for `a`, 1 for `b` (RoBERTa: one token type, all 0).
    distinct_segment_ids = True

    def __init__(
        self,
        vocabulary,
        sequence_length=128,
        lowercase=True,
        strip_accents=None,
        truncate="longest_first",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vocabulary, str):
            vocabulary = load_vocabulary(vocabulary)
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase, strip_accents=strip_accents)
        self._set_up(tokenizer, sequence_length, truncate, start=CLS, end=SEP, pad=PAD)

    def _set_up(self, tokenizer, sequence_length, truncate, start, end, pad):
        """What BERT and its siblings share: the tokenizer, the special ids and the packing."""
        # Inputs are strings (or Python lists of them): do not convert them.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.sequence_length = sequence_length
        if truncate not in ("longest_first", "round_robin", "waterfall"):
            raise ConfigError(f"truncate must be 'longest_first', 'round_robin' or 'waterfall', got {truncate!r}")
        self.truncate = truncate
        self.tokenizer = tokenizer
        require_tokens(tokenizer.get_vocabulary(), [start, end, pad], "the tokenizer's vocabulary")
        self.pad_token_id = tokenizer.token_to_id(pad)
        self.cls_token_id = tokenizer.token_to_id(start)
        self.sep_token_id = tokenizer.token_to_id(end)
        # keras-hub's packer only for its round-robin trimmer; `pack_segments` packs everything else
        # (single texts; pairs cut longest_first, or waterfall, which is its own default cut).
        self.round_robin_packer = None if truncate != "round_robin" else keras_hub.layers.MultiSegmentPacker(
            sequence_length=sequence_length,
            start_value=self.cls_token_id,
            end_value=self.sep_token_id,
            sep_value=None if self.separator_length == 1 else [self.sep_token_id] * self.separator_length,
            pad_value=self.pad_token_id,
            truncate="round_robin",
            _allow_python_workflow=False,
        )
        # Traced `pack_ragged` functions by number of segments. Set past Keras'
        # attribute tracking so they are not saved with the layer.
        object.__setattr__(self, "_pack_functions", {})
        self.built = True

    def num_special_tokens(self, num_segments):
        """Special tokens around `num_segments` segments: BERT 1 + n, RoBERTa 2n."""
        return 1 + (num_segments - 1) * self.separator_length + 1

    def _pack(self, segments):
        if len(segments) == 2 and self.round_robin_packer is not None:
            token_ids, segment_ids = self.round_robin_packer(segments)
        else:
            keep = self._pair_lengths(segments) if len(segments) == 2 and self.truncate == "longest_first" else None
            token_ids, segment_ids = pack_segments(segments, self.sequence_length, self.cls_token_id,
                                                   self.sep_token_id, self.pad_token_id, self.separator_length,
                                                   keep)
        return token_ids, segment_ids if self.distinct_segment_ids else tf.zeros_like(segment_ids)

    def _segments(self, x):
        """A tuple of string tensors, one per segment."""
        segments = x if isinstance(x, tuple) else (x,)
        if len(segments) not in (1, 2):
            raise ValueError(f"Expected 1 or 2 segments, got {len(segments)}")
        return tuple(tf.convert_to_tensor(s, dtype=tf.string) for s in segments)

    @preprocessing_function
    def call(self, x):
        segments = tuple(self.tokenizer(s) for s in self._segments(x))
        token_ids, segment_ids = self._pack(segments)
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.pad_token_id,
        }

    def pack_ragged(self, x, batch_size=8192):
        """Tokenizes and packs all texts, without padding, in big batches.

        Args:
            x: strings `[N]` (list, array or tensor), or a tuple of two.
            batch_size: texts per in-graph tokenizer call.

        Returns `(features, num_truncated)`: `features` is a dict of
        `tf.RaggedTensor`s `token_ids` and `segment_ids` (int32, `[N, None]`,
        each row at most `sequence_length` long, with `[CLS]`/`[SEP]`);
        `num_truncated` is how many texts (pairs) were cut to fit.
        """
        segments = self._segments(x)
        pack = self._pack_functions.get(len(segments))
        if pack is None:
            pack = self._pack_functions[len(segments)] = self._make_pack_function(len(segments))
        num_texts = int(tf.shape(segments[0])[0])
        token_ids, segment_ids, num_truncated = [], [], 0
        for start in range(0, max(num_texts, 1), batch_size):
            ids, segs, cut = pack(*(s[start : start + batch_size] for s in segments))
            token_ids.append(ids)
            segment_ids.append(segs)
            num_truncated += int(cut)
        features = {
            "token_ids": tf.concat(token_ids, axis=0),
            "segment_ids": tf.concat(segment_ids, axis=0),
        }
        return features, num_truncated

    def _pair_lengths(self, segments):
        """With `truncate="longest_first"`, how many tokens of each segment of a pair to keep, as Hugging Face cuts.

        The pair's budget is `sequence_length` less the special tokens (3;
        RoBERTa 4). If both fit, nothing is cut; if the shorter fits in half
        the budget it is kept and the longer
        gets the rest; otherwise both get half, the odd token going to the
        longer one (to `b` when they are as long).
        """
        a, b = segments
        budget = tf.cast(self.sequence_length - self.num_special_tokens(2), a.row_splits.dtype)
        len_a, len_b = a.row_lengths(), b.row_lengths()
        shorter = tf.minimum(len_a, len_b)
        halve = 2 * shorter > budget
        keep_shorter = tf.where(halve, budget // 2, shorter)
        keep_longer = budget - keep_shorter
        a_shorter = len_a <= len_b  # a tie counts `a` as the shorter: `b` gets the odd token
        fits = len_a + len_b <= budget
        keep_a = tf.where(fits, len_a, tf.where(a_shorter, keep_shorter, keep_longer))
        keep_b = tf.where(fits, len_b, tf.where(a_shorter, keep_longer, keep_shorter))
        return keep_a, keep_b

    def _make_pack_function(self, num_segments):
        num_special = self.num_special_tokens(num_segments)

        # autograph=False: no Python control flow on tensors here; AutoGraph would only re-parse the tokenizer.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * num_segments, autograph=False)
        def pack(*texts):
            tokens = tuple(self.tokenizer(t) for t in texts)
            raw_length = tf.add_n([t.row_lengths() for t in tokens]) + num_special
            token_ids, segment_ids = self._pack(tokens)
            lengths = tf.minimum(raw_length, self.sequence_length)
            truncated = tf.reduce_sum(tf.cast(raw_length > self.sequence_length, tf.int64))
            return (
                tf.RaggedTensor.from_tensor(token_ids, lengths=lengths),
                tf.RaggedTensor.from_tensor(segment_ids, lengths=lengths),
                truncated,
            )

        return pack

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": list(self.tokenizer.vocabulary),
                "sequence_length": self.sequence_length,
                "lowercase": self.lowercase,
                "strip_accents": self.strip_accents,
                "truncate": self.truncate,
            }
        )
        return config

    @classmethod
    def from_pretrained(cls, path, sequence_length=128, **kwargs):
        """A preprocessor with the vocabulary and casing of a tfllm, Hugging Face or Google BERT folder."""
        return cls.from_tokenizer(load_tokenizer(path), sequence_length=sequence_length, **kwargs)

    @classmethod
    def from_tokenizer(cls, tokenizer, sequence_length=128, **kwargs):
        """A preprocessor with the vocabulary and casing of a `WordPieceTokenizer`."""
        return cls(list(tokenizer.vocabulary), sequence_length=sequence_length, lowercase=tokenizer.bert_lowercase,
                   strip_accents=tokenizer.bert_strip_accents, **kwargs)
