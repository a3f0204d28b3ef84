"""WordPiece token ids with character offsets into the original text, for span tasks (SQuAD).

Why not a library call: keras-hub's `WordPieceTokenizer` has no
`tokenize_with_offsets`, and tensorflow-text's `BertTokenizer` does but
normalizes differently from our `WordPieceTokenizer` (NFKC case folding,
"ß" -> "ss"; see word_piece.py), so its ids would not be the model's ids, and
its offsets index the *normalized* text whenever it lower-cases or strips
accents. So we run the three steps of `WordPieceTokenizer` with the same code
and the offset-returning variants of the same ops:

1. BERT normalization (`normalize_text`, unchanged) applied to each character
   on its own, so every normalized byte is known to come from one original
   character. The joined pieces equal the normalized whole text: the
   normalizer works character by character (see its docstring);
   `WordPieceOffsets` checks this and counts the texts where it does not hold.
2. keras-hub's word split (its own regexes) with `tf_text.regex_split_with_offsets`.
3. WordPiece with `tf_text.FastWordpieceTokenizer.tokenize_with_offsets`,
   configured as keras-hub configures its own.

Byte offsets in the normalized text are then mapped back to character (code
point, i.e. Python `str` index) offsets in the original text.
"""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.tokenizers import word_piece_tokenizer as keras_hub_word_piece

from tfllm.tokenizers.word_piece import normalize_text


class WordPieceOffsets:
    """Tokenizes texts like `tokenizer` and says which characters each token covers.

    Args:
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.

    Call with a list of str; returns `(ids, starts, ends, num_mismatched)`:
    `ids`, `starts`, `ends` are lists (one entry per text) of int32 arrays,
    token `k` of text `t` covers `texts[t][starts[t][k]:ends[t][k]]` (an
    `[UNK]` covers its whole word; characters the normalizer deletes count
    with the token before them); `num_mismatched` counts texts whose
    character-wise normalization differs from the whole-text one (then ids
    may differ from `tokenizer(text)`; 0 for all text we have seen).

    Example:
    >>> offsets = WordPieceOffsets(WordPieceTokenizer(["[PAD]", "[UNK]", "caf", "##e", "!"]))
    >>> ids, starts, ends, _ = offsets(["Café!"])
    >>> ids[0].tolist(), starts[0].tolist(), ends[0].tolist()
    ([2, 3, 4], [0, 3, 4], [3, 4, 5])
    """

    def __init__(self, tokenizer):
        if getattr(tokenizer, "special_tokens_in_strings", False):
            raise ValueError("WordPieceOffsets does not support special_tokens_in_strings=True")
        self.tokenizer = tokenizer
        if tokenizer.split_on_cjk:
            self._split = (keras_hub_word_piece.WHITESPACE_PUNCTUATION_AND_CJK_REGEX,
                           keras_hub_word_piece.PUNCTUATION_AND_CJK_REGEX)
        else:
            self._split = (keras_hub_word_piece.WHITESPACE_AND_PUNCTUATION_REGEX,
                           keras_hub_word_piece.PUNCTUATION_REGEX)
        # The arguments of keras-hub's `WordPieceTokenizer._set_vocabulary_tf`.
        self._word_piece = tf_text.FastWordpieceTokenizer(
            vocab=list(tokenizer.vocabulary),
            suffix_indicator=tokenizer.suffix_indicator,
            unknown_token=tokenizer.oov_token,
            no_pretokenization=True,
            token_out_type=tf.int32,
        )

    def __call__(self, texts, batch_size=1024):
        ids, starts, ends, num_mismatched = [], [], [], 0
        texts = list(texts)
        for first in range(0, len(texts), batch_size):
            batch = self._tokenize(texts[first : first + batch_size])
            for out, part in zip((ids, starts, ends), batch[:3]):
                out.extend(part)
            num_mismatched += batch[3]
        return ids, starts, ends, num_mismatched

    def tokenize_in_graph(self, texts):
        """The same ids and character offsets with TensorFlow ops only (for a serving graph).

        Args:
            texts: string tensor `[B]`.

        Returns ragged `ids` (int32), `starts`, `ends` (int64) `[B, None]`,
        equal to `__call__`'s (tested); no mismatch count.
        """
        lowercase, strip_accents = self.tokenizer.bert_lowercase, self.tokenizer.bert_strip_accents
        chars = tf.strings.unicode_split(texts, "UTF-8")
        pieces = tf.ragged.map_flat_values(normalize_text, chars, lowercase, strip_accents)
        normalized = tf.strings.reduce_join(pieces, axis=-1)
        words, word_starts, _ = tf_text.regex_split_with_offsets(normalized, *self._split)
        ids, piece_starts, piece_ends = self._word_piece.tokenize_with_offsets(words)

        # Byte offsets of every token within its text's normalized bytes.
        word_start = tf.repeat(word_starts.flat_values, ids.values.row_lengths())
        ids = ids.merge_dims(1, 2)

        def as_rows(values, default):
            return tf.RaggedTensor.from_row_splits(values, ids.row_splits, validate=False).to_tensor(default)

        start_byte = as_rows(word_start + piece_starts.flat_values, 0)
        end_byte = as_rows(word_start + piece_ends.flat_values, 0)

        # Where each original character's normalized bytes end, per text; the
        # padding is larger than any offset so every row stays sorted.
        char_bytes = tf.cast(tf.strings.length(pieces.flat_values), tf.int64)
        ends_global = tf.cumsum(char_bytes)
        text_first_byte = tf.gather(tf.concat([[0], ends_global], 0), chars.row_starts())
        char_end_byte = tf.RaggedTensor.from_row_splits(
            ends_global - tf.repeat(text_first_byte, chars.row_lengths()), chars.row_splits, validate=False
        ).to_tensor(tf.int64.max)
        start_char = tf.searchsorted(char_end_byte, start_byte, side="right", out_type=tf.int64)
        end_char = tf.searchsorted(char_end_byte, end_byte, side="right", out_type=tf.int64)
        end_char = tf.minimum(end_char, chars.row_lengths()[:, None])
        lengths = ids.row_lengths()
        return (ids, tf.RaggedTensor.from_tensor(start_char, lengths=lengths),
                tf.RaggedTensor.from_tensor(end_char, lengths=lengths))

    def _tokenize(self, texts):
        lowercase, strip_accents = self.tokenizer.bert_lowercase, self.tokenizer.bert_strip_accents
        chars = tf.strings.unicode_split(tf.constant(texts, tf.string), "UTF-8")
        pieces = tf.ragged.map_flat_values(normalize_text, chars, lowercase, strip_accents)
        normalized = tf.strings.reduce_join(pieces, axis=-1)
        num_mismatched = int(tf.reduce_sum(tf.cast(
            normalized != normalize_text(tf.constant(texts, tf.string), lowercase, strip_accents), tf.int32)))
        words, word_starts, _ = tf_text.regex_split_with_offsets(normalized, *self._split)
        ids, piece_starts, piece_ends = self._word_piece.tokenize_with_offsets(words)

        # Byte offsets of every token within its text's normalized bytes.
        pieces_per_word = ids.row_lengths(axis=2).flat_values.numpy()
        word_start = np.repeat(word_starts.flat_values.numpy(), pieces_per_word)
        start_byte = word_start + piece_starts.flat_values.numpy()
        end_byte = word_start + piece_ends.flat_values.numpy()
        tokens_per_text = ids.merge_dims(1, 2).row_lengths().numpy()
        text_of_token = np.repeat(np.arange(len(texts)), tokens_per_text)

        # All texts' normalized bytes laid end to end; `char_end_byte[c]` is
        # where the normalized bytes of original character `c` end (global
        # character index). A byte belongs to the first character ending after it.
        char_bytes = tf.strings.length(pieces.flat_values).numpy()
        char_end_byte = np.cumsum(char_bytes)
        chars_per_text = chars.row_lengths().numpy()
        text_first_char = np.concatenate([[0], np.cumsum(chars_per_text)[:-1]]).astype(np.int64)
        text_first_byte = np.concatenate([[0], char_end_byte])[text_first_char]
        offset = text_first_byte[text_of_token]
        first_char = text_first_char[text_of_token]
        start_char = np.searchsorted(char_end_byte, offset + start_byte, side="right") - first_char
        # A token ends where the next character with normalized bytes starts,
        # so characters the normalizer deleted right after it (a combining
        # accent of decomposed input, a zero-width space) stay with it.
        end_char = np.searchsorted(char_end_byte, offset + end_byte, side="right") - first_char
        end_char = np.minimum(end_char, chars_per_text[text_of_token])

        splits = np.cumsum(tokens_per_text)[:-1]
        return (
            np.split(ids.flat_values.numpy().astype(np.int32), splits),
            np.split(start_char.astype(np.int32), splits),
            np.split(end_char.astype(np.int32), splits),
            num_mismatched,
        )
