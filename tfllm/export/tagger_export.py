"""Export a BERT token classifier (NER tagger) as a SavedModel: raw sentences in, words and one tag per word out."""

import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.tokenizers import word_piece_tokenizer as keras_hub_word_piece

from tfllm.data.token_classification import unknown_id
from tfllm.data.token_classification import word_prefix
from tfllm.errors import ConfigError
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import padded_length
from tfllm.export.serving_layout import string_batch_spec
from tfllm.tokenizers.word_piece import _CONTROL_REGEX
from tfllm.tokenizers.word_piece import _SPACE_REGEX

WARMUP_SENTENCES = ["Angela Merkel visited Paris on Monday.",
                    "The European Union and the United Nations met in New York with officials from Germany."]


class TaggerServingModule(tf.Module):
    """Word splitting + WordPiece (or byte-level BPE) + `BertTokenClassifier` + per-word tags, in one graph.

    Sentences are split into words, each word is tokenized on its own (byte-level
    BPE: with a leading space) and tagged by its FIRST piece, exactly as in training
    (`tfllm.data.token_classification`): `[CLS] pieces... [SEP]`, cut to
    `sequence_length` tokens; words cut off get tag "O" and score 0. The
    model runs on the batch padded to its longest row rounded up to 8
    tokens (`padded_length`), not to `sequence_length`.

    Word splitting (`split_punctuation`): True splits on whitespace and
    around every punctuation character (and CJK character), as BERT's basic
    tokenizer does ("Paris." -> "Paris", "."); False splits on whitespace
    only, so a caller that sends CoNLL-style pre-tokenized text joined with
    spaces ("U.S. officials ...") gets training-time words exactly. Control
    characters are deleted and Unicode spaces count as spaces first.

    Signature `serving_default`:
        inputs:  `text`: string [batch], one sentence each
        outputs: `words`: string [batch, max_words] (padded with ""),
                 `tags`: string [batch, max_words] (padded with ""),
                 `scores`: float32 [batch, max_words] (probability of the tag; 0 for
                     padding and for words cut off at `sequence_length`),
                 `num_words`: int32 [batch]
    """

    def __init__(self, preprocessor, model, labels, split_punctuation=True):
        super().__init__()
        num_classes = model.output.shape[-1]
        if len(labels) != num_classes:
            raise ConfigError(f"{len(labels)} labels given for a model with {num_classes} classes")
        self.preprocessor = preprocessor
        self.tokenizer = preprocessor.tokenizer
        self.model = model
        self.labels = tf.constant(list(labels))
        self.split_punctuation = split_punctuation
        self.budget = preprocessor.sequence_length - 2  # room for [CLS] and [SEP]
        self.unk_id = unknown_id(self.tokenizer)
        self.word_prefix = word_prefix(self.tokenizer)
        # A byte-level BPE tokenizer has no such setting: split CJK characters, as BERT's basic tokenizer does.
        if getattr(self.tokenizer, "split_on_cjk", True):
            self._split = (keras_hub_word_piece.WHITESPACE_PUNCTUATION_AND_CJK_REGEX,
                           keras_hub_word_piece.PUNCTUATION_AND_CJK_REGEX)
        else:
            self._split = (keras_hub_word_piece.WHITESPACE_AND_PUNCTUATION_REGEX,
                           keras_hub_word_piece.PUNCTUATION_REGEX)

    def split_words(self, text):
        """Ragged string [batch, words]."""
        text = tf.strings.regex_replace(text, _CONTROL_REGEX, "")
        text = tf.strings.regex_replace(text, _SPACE_REGEX, " ")
        if self.split_punctuation:
            return tf_text.regex_split(text, *self._split)
        return tf.strings.split(text)

    @tf.function(input_signature=[string_batch_spec("text")], autograph=False)
    def serve(self, text):
        words = self.split_words(check_string_batch(text, "text"))
        words_per_sentence = words.row_lengths()
        word_texts = words.flat_values
        if self.word_prefix:
            word_texts = tf.strings.join([tf.fill(tf.shape(word_texts), self.word_prefix), word_texts])
        pieces = self.tokenizer(word_texts)  # [num_words, pieces]
        # A word the tokenizer deletes entirely becomes one [UNK], as in training.
        empty = tf.equal(pieces.row_lengths(), 0)
        unk = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(empty)[0], 1], tf.cast(self.unk_id, pieces.dtype)))
        keep = tf.concat([tf.ones_like(pieces, tf.bool), tf.RaggedTensor.from_tensor(empty[:, None])], axis=1)
        pieces = tf.ragged.boolean_mask(tf.concat([pieces, unk], axis=1), keep)

        # Where each word's first piece lands in its sentence; kept if before the cut.
        counts = pieces.row_lengths()
        first_piece = tf.cumsum(counts, exclusive=True)
        sentence_start = tf.gather(tf.concat([first_piece, [tf.reduce_sum(counts)]], 0), words.row_starts())
        first_piece -= tf.repeat(sentence_start, words_per_sentence)
        kept = first_piece < self.budget

        token_ids = tf.RaggedTensor.from_row_lengths(pieces, words_per_sentence, validate=False)
        token_ids = token_ids.merge_dims(1, 2)[:, : self.budget]
        batch = tf.shape(text)[0]
        token_ids = tf.concat([
            tf.fill([batch, 1], tf.cast(self.preprocessor.cls_token_id, token_ids.dtype)),
            token_ids,
            tf.fill([batch, 1], tf.cast(self.preprocessor.sep_token_id, token_ids.dtype)),
        ], axis=1)
        lengths = token_ids.row_lengths()
        # Dynamic length: padded to the batch's longest row (rounded up to 8), not to sequence_length.
        width = padded_length(lengths, self.preprocessor.sequence_length)
        pad = tf.cast(self.preprocessor.pad_token_id, token_ids.dtype)
        token_ids = tf.cast(token_ids.to_tensor(pad, shape=tf.stack([batch, width])), tf.int32)
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.sequence_mask(lengths, tf.shape(token_ids)[1]),
        }
        probabilities = tf.nn.softmax(tf.cast(self.model(features, training=False), tf.float32), axis=-1)

        def ragged(x):
            return tf.RaggedTensor.from_row_lengths(x, words_per_sentence, validate=False)

        positions = ragged(tf.where(kept, first_piece + 1, 0)).to_tensor(0)
        kept = ragged(kept).to_tensor(False)
        word_probabilities = tf.gather(probabilities, positions, batch_dims=1)  # [batch, max_words, classes]
        is_word = tf.sequence_mask(words_per_sentence, tf.shape(positions)[1])
        tags = tf.gather(self.labels, tf.argmax(word_probabilities, axis=-1, output_type=tf.int32))
        return {
            "words": words.to_tensor(""),
            "tags": tf.where(kept, tags, tf.where(is_word, "O", "")),
            "scores": tf.where(kept, tf.reduce_max(word_probabilities, axis=-1), 0.0),
            "num_words": tf.cast(words_per_sentence, tf.int32),
        }

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        return {"serving_default": self.serve}

    def warmup_requests(self):
        return [("serving_default", {"text": WARMUP_SENTENCES[:1]}), ("serving_default", {"text": WARMUP_SENTENCES})]


def export_tagger(preprocessor, model, labels, export_dir, model_name="tagger", version=1, split_punctuation=True,
                  warmup=True):
    """Write the tagging SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path.

    `labels` are the tags of the model's classes, in order (`<model_dir>/labels.txt` of recipes/tag.py).
    """
    module = TaggerServingModule(preprocessor, model, labels, split_punctuation)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
