"""Byte-level BPE token ids with character offsets into the original text, for span tasks (SQuAD with RoBERTa).

Why not a library call: keras-hub's `BytePairTokenizer` has no
`tokenize_with_offsets`, and Hugging Face's tokenizer is not a TensorFlow op
(an export could not serve it). Byte-level BPE loses nothing, so no
re-alignment is needed: the tokens of a text, as bytes, are the text's UTF-8
bytes in order (every byte is in the vocabulary, the pre-tokenizer drops no
character, a special token is its own string). A token's byte span is the
running sum of the byte lengths of the tokens before it.

Byte offsets become character (Python `str` index) offsets as Hugging Face's
fast tokenizers make them (`return_offsets_mapping`): a token covers the
characters its bytes belong to, so the two or three tokens one CJK character
or accented letter may be split into each cover that whole character; then,
as its `trim_offsets=True` (RoBERTa's default), the token's leading and
trailing spaces (`Ġ`) are left out, so " Paris" covers "Paris" and a lone
space covers nothing (an empty span at the next character). Texts are
tokenized as they are, without an added prefix space (RoBERTa's default), so
Hugging Face's exception for an added first space never applies.
"""

import numpy as np
import tensorflow as tf
from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

_SPACE = dict(zip(*bytes_to_unicode()))[b" "]  # "Ġ"


def _token_tables(tokenizer):
    """Per id + 1 (index 0: the -1 of a byte missing from the vocabulary): bytes, leading and trailing spaces."""
    alphabet = set(bytes_to_unicode()[1])
    size = max(tokenizer.vocabulary.values()) + 2
    num_bytes, leading, trailing = np.ones(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64)
    special = set(tokenizer.special_token_strings)
    for token, i in tokenizer.vocabulary.items():
        byte_level = token not in special and all(c in alphabet for c in token)
        num_bytes[i + 1] = len(token) if byte_level else len(token.encode("utf-8"))
        if byte_level:  # As Hugging Face's ByteLevel `process_offsets`: the "Ġ"s at either end.
            leading[i + 1] = len(token) - len(token.lstrip(_SPACE))
            trailing[i + 1] = len(token) - len(token.rstrip(_SPACE))
    return num_bytes, leading, trailing


class BytePairOffsets:
    """Tokenizes texts like `tokenizer` and says which characters each token covers.

    Args:
        tokenizer: a `tfllm.tokenizers.BytePairTokenizer`.

    Call with a list of str; returns `(ids, starts, ends, num_mismatched)`
    like `WordPieceOffsets`: per text, int32 arrays; token `k` of text `t`
    covers `texts[t][starts[t][k]:ends[t][k]]` (Hugging Face's
    `offset_mapping`, tested); `num_mismatched` counts texts whose tokens
    do not add up to their bytes (a byte missing from the vocabulary; their
    offsets may be off).

    Example:
    >>> ids, starts, ends, _ = BytePairOffsets(tokenizer)(["Café au lait"])
    >>> [text[s:e] for s, e in zip(starts[0], ends[0])]   # e.g. ['Caf', 'é', 'é', 'au', 'lait']
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        num_bytes, leading, trailing = _token_tables(tokenizer)
        self._num_bytes = tf.constant(num_bytes)
        self._leading = tf.constant(leading)
        self._trailing = tf.constant(trailing)
        self._compiled = None

    def __call__(self, texts, batch_size=1024):
        if self._compiled is None:
            self._compiled = tf.function(self._with_check, input_signature=[tf.TensorSpec([None], tf.string)],
                                         autograph=False)  # no Python control flow on tensors
        ids, starts, ends, num_mismatched = [], [], [], 0
        texts = list(texts)
        for first in range(0, len(texts), batch_size):
            batch_ids, batch_starts, batch_ends, mismatched = self._compiled(
                tf.constant(texts[first : first + batch_size], tf.string))
            splits = batch_ids.row_splits.numpy()[1:-1]
            for out, part in zip((ids, starts, ends), (batch_ids, batch_starts, batch_ends)):
                out.extend(np.split(part.flat_values.numpy().astype(np.int32), splits))
            num_mismatched += int(mismatched)
        return ids, starts, ends, num_mismatched

    def _with_check(self, texts):
        ids, starts, ends, total_bytes = self._offsets(texts)
        text_bytes = tf.cast(tf.strings.length(texts), tf.int64)
        mismatched = tf.reduce_sum(tf.cast(tf.not_equal(total_bytes, text_bytes), tf.int64))
        return ids, starts, ends, mismatched

    def tokenize_in_graph(self, texts):
        """The same ids and character offsets with TensorFlow ops only (for a serving graph).

        Args:
            texts: string tensor `[B]`.

        Returns ragged `ids` (int32), `starts`, `ends` (int64) `[B, None]`.
        """
        return self._offsets(texts)[:3]

    def _offsets(self, texts):
        ids = tf.cast(self.tokenizer(texts), tf.int64)
        flat = ids.flat_values + 1
        # Byte span of each token within its text: a running sum, restarted at each text.
        sizes = tf.gather(self._num_bytes, flat)
        running = tf.cumsum(sizes)
        text_start = tf.gather(tf.concat([[0], running], 0), ids.row_starts())
        end_byte = running - tf.repeat(text_start, ids.row_lengths())
        start_byte = end_byte - sizes
        total_bytes = tf.gather(tf.concat([[0], running], 0), ids.row_limits()) - text_start

        # Byte -> character: a byte belongs to the last character starting at or before it.
        _, char_starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
        char_starts = char_starts.to_tensor(tf.int64.max)  # padding after every offset keeps rows sorted

        def as_rows(values):
            return tf.RaggedTensor.from_row_splits(values, ids.row_splits, validate=False).to_tensor(0)

        start_char = tf.searchsorted(char_starts, as_rows(start_byte), side="right", out_type=tf.int64) - 1
        end_char = tf.searchsorted(char_starts, as_rows(end_byte - 1), side="right", out_type=tf.int64)
        lengths = ids.row_lengths()
        start_char = tf.RaggedTensor.from_tensor(start_char, lengths=lengths).flat_values
        end_char = tf.RaggedTensor.from_tensor(end_char, lengths=lengths).flat_values
        # trim_offsets: leave out leading and trailing spaces (one byte, one character each).
        start_char = tf.minimum(start_char + tf.gather(self._leading, flat), end_char)
        end_char = tf.maximum(end_char - tf.gather(self._trailing, flat), start_char)
        return (tf.cast(ids, tf.int32), ids.with_flat_values(start_char), ids.with_flat_values(end_char),
                total_bytes)
