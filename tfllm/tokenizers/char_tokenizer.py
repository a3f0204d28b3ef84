"""A character-level tokenizer whose vocabulary is the set of characters of a corpus."""

import keras
import numpy as np
import tensorflow as tf

from tfllm.errors import ConfigError
from tfllm.errors import DataError


@keras.saving.register_keras_serializable(package="tfllm")
class CharTokenizer(keras.layers.Layer):
    """Maps each Unicode character to an id in a small learned vocabulary, in-graph.

    keras-hub's `UnicodeCodepointTokenizer` uses raw code points as ids, so
    its softmax spans every code point up to `vocabulary_size`. For char-level
    language modelling (nanoGPT's Tiny Shakespeare setting: 65 symbols) the
    vocabulary should be exactly the corpus's characters, so tfllm keeps this
    small table instead. Characters outside the vocabulary are an error.

    Example:
    >>> tok = CharTokenizer.from_text("hello world")
    >>> tok.detokenize(tok(["hello"]))  # [b"hello"]
    """

    def __init__(self, vocabulary, **kwargs):
        super().__init__(**kwargs)
        # Take Python strings as they are (as keras-hub tokenizers do).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary) or not all(len(c) == 1 for c in vocabulary):
            raise ConfigError("CharTokenizer vocabulary must be distinct single characters")
        self.vocabulary = vocabulary
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int32)
            ),
            default_value=-1,
        )
        self._chars = tf.constant(vocabulary)

    @classmethod
    def from_text(cls, text, **kwargs):
        return cls(sorted(set(text)), **kwargs)

    def vocabulary_size(self):
        return len(self.vocabulary)

    def get_vocabulary(self):
        return list(self.vocabulary)

    def call(self, text):
        """String(s) -> int32 ids (ragged [B, None] for a batch, [None] for a scalar)."""
        text = tf.convert_to_tensor(text)
        chars = tf.strings.unicode_split(text, "UTF-8")
        ids = tf.ragged.map_flat_values(self._table.lookup, chars)
        flat_ids = ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids
        if tf.executing_eagerly():  # name the characters (a prompt, a data file), in one line
            flat_chars = chars.flat_values if isinstance(chars, tf.RaggedTensor) else chars
            unknown = sorted({c.decode("utf-8") for c in flat_chars.numpy()[flat_ids.numpy() < 0]})
            if unknown:
                raise DataError(f"the text has {len(unknown)} character(s) outside this model's "
                                f"{len(self.vocabulary)}-character vocabulary: "
                                f"{' '.join(map(repr, unknown[:20]))}{' ...' if len(unknown) > 20 else ''}")
        else:
            tf.debugging.assert_non_negative(flat_ids, message="CharTokenizer: the text has characters outside "
                                                               "the vocabulary")
        return ids

    def detokenize(self, ids):
        """int ids ([B, T] dense or ragged, or [T]) -> string(s)."""
        ids = tf.convert_to_tensor(ids) if not isinstance(ids, tf.RaggedTensor) else ids
        chars = tf.ragged.map_flat_values(tf.gather, self._chars, ids) if isinstance(
            ids, tf.RaggedTensor) else tf.gather(self._chars, ids)
        return tf.strings.reduce_join(chars, axis=-1)

    def encode(self, text):
        """A Python string -> numpy int32 ids; a list of strings -> a list of them (for data streams)."""
        if isinstance(text, str):
            return np.asarray(self(tf.constant(text)), dtype=np.int32)
        ids = self(tf.constant(list(text), tf.string))
        return np.split(ids.flat_values.numpy(), ids.row_splits.numpy()[1:-1]) if len(text) else []

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary)
        return config
