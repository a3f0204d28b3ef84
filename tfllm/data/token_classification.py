"""Token classification input: align word tags with WordPiece or byte-level BPE tokens, build `tf.data` pipelines.

Each word is tokenized on its own (with the preprocessor's tokenizer,
in-graph, all words at once) and the sentence becomes `[CLS] pieces... [SEP]`
(RoBERTa: `<s> pieces... </s>`). A byte-level BPE tokenizer gets each word
with a leading space, so "Paris" is "ĠParis" wherever it stands, as Hugging
Face's RoBERTa tokenizer encodes words with `is_split_into_words=True,
add_prefix_space=True` (its `word_ids()` align the same, tested). A word's tag is the label of its FIRST piece; the
other pieces, `[CLS]`, `[SEP]` and padding get label weight 0, so the loss
and token metrics ignore them (BERT's NER setup, Devlin et al. 2019, 5.3).
A word the tokenizer deletes entirely (e.g. a lone soft hyphen) becomes one
`[UNK]`, so that every word keeps a prediction.

Sentences longer than `sequence_length` pieces are cut; the words cut off
are counted and logged. They have no prediction, so `predict_word_tags`
gives them "O": a gold entity among them counts as missed, which keeps
entity F1 honest (scoring only the kept words would drop those entities
from the gold set).
"""

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from tfllm.data.batching import batch_by_length
from tfllm.errors import ConfigError
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.word_piece import UNK


def word_prefix(tokenizer):
    """What goes before each word when it is tokenized alone: " " for byte-level BPE (RoBERTa), else ""."""
    return " " if isinstance(tokenizer, BytePairTokenizer) else ""


def unknown_id(tokenizer):
    """The id a word whose characters the tokenizer deletes becomes (WordPiece's [UNK]).

    Byte-level BPE deletes nothing (a word is at least its leading space), so
    the id is never used there; it is RoBERTa's "<unk>" if the vocabulary has one.
    """
    if isinstance(tokenizer, BytePairTokenizer):
        return tokenizer.vocabulary.get("<unk>", 0)
    return tokenizer.token_to_id(UNK)


@dataclasses.dataclass
class EncodedSentences:
    """Tokenized, label-aligned sentences (unpadded), and where each word's first piece is.

    Attributes:
        token_ids, labels: ragged int32 `[N, None]` (`labels` 0 where unlabelled).
        label_weights: ragged float32 `[N, None]`: 1.0 on the first piece of a
            word with a known tag, else 0.
        word_starts: per sentence, an int array of the first-piece positions
            of the words kept (the first `len(word_starts[i])` words).
        num_words: int array `[N]`, words per sentence before truncation.
        sequence_length: the length the sentences were cut to.
    """

    token_ids: tf.RaggedTensor
    labels: tf.RaggedTensor
    label_weights: tf.RaggedTensor
    word_starts: list
    num_words: np.ndarray
    sequence_length: int

    def __len__(self):
        return len(self.num_words)

    @property
    def num_truncated_words(self):
        return int(sum(n - len(s) for n, s in zip(self.num_words, self.word_starts)))

    def shard(self, num_shards, index):
        """Every `num_shards`-th sentence starting at `index` (as `Dataset.shard`)."""
        rows = np.arange(index, len(self), num_shards)
        return EncodedSentences(
            tf.gather(self.token_ids, rows), tf.gather(self.labels, rows), tf.gather(self.label_weights, rows),
            [self.word_starts[i] for i in rows], self.num_words[rows], self.sequence_length,
        )


def _word_pieces(tokenizer, words, batch_size=65536):
    """WordPiece ids of each word: (flat ids, pieces per word), in-graph, in big batches."""
    tokenize = tf.function(tokenizer, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    values, lengths = [], []
    for start in range(0, len(words), batch_size):
        pieces = tokenize(tf.constant(words[start : start + batch_size], tf.string))
        values.append(pieces.flat_values.numpy())
        lengths.append(pieces.row_lengths().numpy())
    if not values:
        return np.zeros([0], np.int32), np.zeros([0], np.int64)
    return np.concatenate(values), np.concatenate(lengths)


def encode_tagged_sentences(sentences, preprocessor, labels, name="data"):
    """Tokenizes `TaggedSentence`s and aligns their tags with the first piece of each word.

    Args:
        sentences: `TaggedSentence`s (BIO tags).
        preprocessor: a `BertPreprocessor` or `RobertaPreprocessor`: its
            tokenizer, special tokens and `sequence_length` are used.
        labels: the label vocabulary (list of tags); a tag not in it gets
            weight 0 (counted and logged), so it is still scored by entity F1.
        name: names the data in the log lines.

    Returns an `EncodedSentences`; logs how many words and sentences were cut.
    """
    label_ids = {tag: i for i, tag in enumerate(labels)}
    tokenizer = preprocessor.tokenizer
    unk = unknown_id(tokenizer)
    budget = preprocessor.sequence_length - 2  # Room for [CLS] and [SEP].
    if budget < 1:
        raise ConfigError(f"sequence_length {preprocessor.sequence_length} leaves no room for words")
    prefix = word_prefix(tokenizer)
    piece_values, piece_lengths = _word_pieces(tokenizer, [prefix + w for s in sentences for w in s.words])
    piece_offsets = np.concatenate([[0], np.cumsum(piece_lengths)])

    token_ids, tag_ids, weights, word_starts = [], [], [], []
    num_unknown_tags = num_cut_sentences = word = 0
    for sentence in sentences:
        ids, starts = [], []
        for tag in sentence.tags:
            pieces = piece_values[piece_offsets[word] : piece_offsets[word + 1]]
            word += 1
            if len(ids) >= budget:
                continue  # Cut off: counted via word_starts; predicted "O".
            starts.append(len(ids) + 1)  # +1: [CLS] comes first.
            ids.extend(pieces if len(pieces) else [unk])
            num_unknown_tags += tag not in label_ids
        ids = [preprocessor.cls_token_id, *ids[:budget], preprocessor.sep_token_id]
        row_labels = np.zeros(len(ids), np.int32)
        row_weights = np.zeros(len(ids), np.float32)
        for position, tag in zip(starts, sentence.tags):
            if tag in label_ids:
                row_labels[position], row_weights[position] = label_ids[tag], 1.0
        num_cut_sentences += len(starts) < len(sentence.tags)
        token_ids.append(np.asarray(ids, np.int32))
        tag_ids.append(row_labels)
        weights.append(row_weights)
        word_starts.append(np.asarray(starts, np.int64))

    def ragged(rows, dtype):
        lengths = [len(r) for r in rows]
        flat = np.concatenate(rows).astype(dtype) if rows else np.zeros([0], dtype)
        return tf.RaggedTensor.from_row_lengths(flat, tf.constant(lengths, tf.int64))

    encoded = EncodedSentences(
        ragged(token_ids, np.int32), ragged(tag_ids, np.int32), ragged(weights, np.float32),
        word_starts, np.array([len(s.words) for s in sentences], np.int64), preprocessor.sequence_length,
    )
    logging.info(
        "%s: %d of %d words (in %d of %d sentences) cut off at %d tokens; they count as predicted 'O'",
        name, encoded.num_truncated_words, int(encoded.num_words.sum()), num_cut_sentences, len(sentences),
        preprocessor.sequence_length,
    )
    if num_unknown_tags:
        logging.warning("%s: %d words have tags outside the label vocabulary %s: not trained or "
                        "counted in token accuracy, still scored by entity F1", name, num_unknown_tags, labels)
    return encoded


def tagging_dataset(
    encoded,
    batch_size,
    training,
    seed=None,
    input_context=None,
    shuffle_buffer_size=None,
    bucket_boundaries=None,
    bucket_by_length=True,
):
    """A `tf.data.Dataset` of `(features, labels)` batches for token classification.

    Batching as `classification_dataset`: `training=True` shuffles (seeded,
    reshuffled each epoch), repeats forever and groups sentences of similar
    length into batches of exactly `batch_size` (drop remainder);
    `training=False` yields every sentence once, in order. `input_context`
    (a `tf.distribute.InputContext`) keeps every `num_input_pipelines`-th
    sentence starting at `input_pipeline_id`.

    Features: `token_ids`, `segment_ids` (int32 `[B, T]`), `padding_mask` (bool
    `[B, T]`); labels: `labels` (int32 `[B, T]`) and `label_weights` (float32
    `[B, T]`, 0 on padding), padded to the longest row of the batch.
    `bucket_by_length=False`: training batches of consecutive shuffled
    sentences of any length, as transformers' DataLoader.
    """
    if input_context is not None and input_context.num_input_pipelines > 1:
        encoded = encoded.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def to_example(token_ids, labels, label_weights):
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.ones_like(token_ids, dtype=tf.bool),
        }
        return features, {"labels": labels, "label_weights": label_weights}

    ds = tf.data.Dataset.from_tensor_slices((encoded.token_ids, encoded.labels, encoded.label_weights))
    ds = ds.map(to_example)
    return batch_by_length(ds, batch_size, training, len(encoded), encoded.sequence_length, seed=seed,
                           shuffle_buffer_size=shuffle_buffer_size, bucket_boundaries=bucket_boundaries,
                           bucket_by_length=bucket_by_length)


def predict_word_tags(model, encoded, labels, batch_size=64):
    """Each sentence's predicted tag per word: the argmax at its first piece; "O" for words cut off.

    Args:
        model: maps the features of `tagging_dataset` to logits `[B, T, C]`.
        encoded: an `EncodedSentences`.
        labels: the label vocabulary (tag of each class id).
    """
    # autograph=False, as Keras' own predict step (`do_not_convert`): AutoGraph would re-parse this whole module
    # with gast to find the lambda, for a call with no Python control flow.
    predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32),
                          reduce_retracing=True, autograph=False)
    predictions = []
    for features, _ in tagging_dataset(encoded, batch_size, training=False):
        predictions.extend(predict(features).numpy())
    return word_tags(predictions, encoded, labels)


def word_tags(predictions, encoded, labels):
    """Each sentence's tag per word from its predicted class ids per token (`[T]` per sentence, in order)."""
    tags = []
    for row, starts, num_words in zip(predictions, encoded.word_starts, encoded.num_words):
        kept = [labels[i] for i in row[starts]]
        tags.append(kept + ["O"] * (int(num_words) - len(kept)))
    return tags
