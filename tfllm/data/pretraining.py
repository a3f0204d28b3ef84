"""BERT pretraining data: documents -> masked-LM + next-sentence instances -> TFRecords -> `tf.data`.

Two ways to feed `BertPretrainer`:

1. Static masking, as Google's `create_pretraining_data.py`: `create_pretraining_data`
   reads plain-text documents, tokenizes them in big in-graph batches,
   builds instances in Python (same algorithm, same feature names and
   semantics: `next_sentence_labels` 1 = random next), duplicates the data
   `dupe_factor` times with different masks, and writes sharded TFRecords;
   `pretraining_dataset` reads them.
2. Dynamic masking: `masked_text_dataset` builds sentence pairs and masks
   inside the `tf.data` pipeline with keras-hub's `MaskedLMMaskGenerator`, so
   each epoch sees new masks (and new random next sentences).

Input text format (original BERT): one sentence per line, a blank line between
documents. With `split_sentences=True` lines are running text and are split
on sentence punctuation instead.

Both readers yield `(features, labels)`: features are `BertPretrainer`'s
inputs (`token_ids`, `segment_ids`, `padding_mask` bool,
`masked_lm_positions`), labels a dict of `masked_lm_ids`,
`masked_lm_weights` and `next_sentence_labels`.
"""

import collections
import dataclasses
import os
import random
import re
import time

import keras_hub
import numpy as np
import tensorflow as tf
from absl import logging

from tfllm.data.errors import DataError
from tfllm.data.text_files import text_lines
from tfllm.tokenizers.word_piece import CLS
from tfllm.tokenizers.word_piece import MASK
from tfllm.tokenizers.word_piece import PAD
from tfllm.tokenizers.word_piece import RESERVED_TOKENS
from tfllm.tokenizers.word_piece import SEP
from tfllm.tokenizers.word_piece import WordPieceTokenizer
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import require_tokens

# Feature names and order of Google's BERT TFRecords.
FEATURE_NAMES = (
    "input_ids", "input_mask", "segment_ids",
    "masked_lm_positions", "masked_lm_ids", "masked_lm_weights", "next_sentence_labels",
)

# ---- Reading and tokenizing documents ----------------------------------------

# A sentence ends at . ! ? (and any closing quotes/brackets) followed by space.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")


def split_sentences(text):
    """Splits running text on sentence punctuation: "A b. C d!" -> ["A b.", "C d!"]."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def read_documents(paths, split_into_sentences=False):
    """Reads documents (lists of sentences) from plain-text files.

    One sentence per line and a blank line between documents (the original
    BERT format); each file also ends a document. With
    `split_into_sentences`, the lines of a document are joined and split on
    sentence punctuation instead.
    """
    documents = []
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise DataError(f"{path}: file not found (expected plain text, blank line between documents)")
        lines = []
        for line in [line for _, line in text_lines(path)] + [""]:
            line = line.strip()
            if line:
                lines.append(line)
            elif lines:
                documents.append(split_sentences(" ".join(lines)) if split_into_sentences else lines)
                lines = []
    return documents


def tokenize_documents(documents, tokenizer, batch_size=8192):
    """WordPiece ids of every sentence, tokenized in big in-graph batches.

    Returns a list of documents, each a list of int32 arrays (one per
    sentence); sentences with no tokens and documents left empty are dropped.
    """
    sentences = [s for doc in documents for s in doc]
    tokenize = tf.function(tokenizer, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    ids = []
    for start in range(0, len(sentences), batch_size):
        ragged = tokenize(tf.constant(sentences[start : start + batch_size]))
        values, splits = ragged.flat_values.numpy().astype(np.int32), ragged.row_splits.numpy()
        ids.extend(np.split(values, splits[1:-1]))
    tokenized, i = [], 0
    for doc in documents:
        sentences_ids = [s for s in ids[i : i + len(doc)] if len(s)]
        i += len(doc)
        if sentences_ids:
            tokenized.append(sentences_ids)
    return tokenized


@dataclasses.dataclass(frozen=True)
class PretrainingVocab:
    """The ids the instance builder needs: special tokens, size, and which tokens are "##" pieces."""

    size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    is_continuation: np.ndarray  # bool [size]: token starts with "##"

    @classmethod
    def from_tokens(cls, tokens):
        tokens = list(tokens)
        require_tokens(tokens, [PAD, CLS, SEP, MASK], "the vocabulary")
        return cls(
            size=len(tokens), pad_id=tokens.index(PAD), cls_id=tokens.index(CLS),
            sep_id=tokens.index(SEP), mask_id=tokens.index(MASK),
            is_continuation=np.array([t.startswith("##") for t in tokens]),
        )


# ---- Instances (Google's create_pretraining_data.py, on ids) --------------------

TrainingInstance = collections.namedtuple(
    "TrainingInstance", "token_ids segment_ids masked_lm_positions masked_lm_ids is_random_next"
)


@dataclasses.dataclass
class Stats:
    """Counts for the summary line."""

    documents: int = 0
    sentences: int = 0
    instances: int = 0
    tokens: int = 0  # real tokens in instances, [CLS]/[SEP] included
    truncated: int = 0  # instances whose pair was cut to max_seq_length
    masked: int = 0
    random_next: int = 0

    def summary(self):
        n = max(self.instances, 1)
        return (f"{self.documents} documents, {self.sentences} sentences -> {self.instances} instances, "
                f"{self.tokens} tokens ({self.tokens / n:.1f}/instance), {self.truncated} truncated "
                f"({100 * self.truncated / n:.1f}%), {self.masked} masked ({self.masked / n:.1f}/instance), "
                f"random next {100 * self.random_next / n:.1f}%")


def create_masked_lm_predictions(token_ids, vocab, masked_lm_prob, max_predictions_per_seq,
                                 whole_word_mask, rng):
    """Chooses positions to predict and corrupts them, as BERT does.

    `min(max_predictions_per_seq, max(1, round(len * masked_lm_prob)))`
    positions (never [CLS]/[SEP]) are predicted; each becomes [MASK] 80% of
    the time, a token drawn uniformly from the whole vocabulary 10%, and stays
    unchanged 10%. With `whole_word_mask`, a word's "##" pieces are chosen
    together with it (a word that would overshoot the budget is skipped).

    Returns `(output_ids, positions, original_ids)`, positions ascending.
    """
    candidates = []
    for i, token in enumerate(token_ids):
        if token == vocab.cls_id or token == vocab.sep_id:
            continue
        if whole_word_mask and candidates and vocab.is_continuation[token]:
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(token_ids) * masked_lm_prob))))
    output = list(token_ids)
    positions = []
    for group in candidates:
        if len(positions) >= num_to_predict:
            break
        if len(positions) + len(group) > num_to_predict:
            continue
        for i in group:
            if rng.random() < 0.8:
                output[i] = vocab.mask_id
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output[i] = rng.randint(0, vocab.size - 1)
            positions.append(i)
    positions.sort()
    return output, positions, [token_ids[i] for i in positions]


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Cuts the longer segment, from the front or the back at random, until the pair fits."""
    truncated = False
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
        truncated = True
    return truncated


def create_instances_from_document(documents, index, vocab, max_seq_length, short_seq_prob,
                                   masked_lm_prob, max_predictions_per_seq, whole_word_mask, rng,
                                   stats=None):
    """Instances from `documents[index]`: chunks of sentences split into A and B.

    Sentences are gathered until a (sometimes shorter, `short_seq_prob`)
    target length is reached; A is the first 1..k-1 of them. B is the rest
    (label 0), or, half the time and always when the chunk is one sentence,
    text from a random other document (label 1; the unused sentences are
    put back).
    """
    document = documents[index]
    stats = stats or Stats()
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)
    instances, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            is_random_next = len(chunk) == 1 or rng.random() < 0.5
            if is_random_next:
                target_b_length = target_length - len(tokens_a)
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                other_document = documents[other]
                for sentence in other_document[rng.randint(0, len(other_document) - 1):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                i -= len(chunk) - a_end  # The unused sentences start the next chunk.
            else:
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            stats.truncated += _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            token_ids = [vocab.cls_id, *tokens_a, vocab.sep_id, *tokens_b, vocab.sep_id]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            token_ids, positions, labels = create_masked_lm_predictions(
                token_ids, vocab, masked_lm_prob, max_predictions_per_seq, whole_word_mask, rng
            )
            instances.append(TrainingInstance(token_ids, segment_ids, positions, labels, is_random_next))
            stats.instances += 1
            stats.tokens += len(token_ids)
            stats.masked += len(positions)
            stats.random_next += is_random_next
            chunk, chunk_length = [], 0
        i += 1
    return instances


def create_instances(documents, vocab, max_seq_length=128, short_seq_prob=0.1, masked_lm_prob=0.15,
                     max_predictions_per_seq=20, dupe_factor=10, whole_word_mask=False, seed=12345,
                     log_every=10000, log=logging.info):
    """All instances of tokenized `documents` (lists of id lists), `dupe_factor` times, shuffled.

    Deterministic for a `seed`. Returns `(instances, stats)`.
    """
    if len(documents) < 2:
        raise DataError(f"Need at least 2 documents for random next sentences; got {len(documents)}")
    rng = random.Random(seed)
    documents = [[np.asarray(s).tolist() for s in doc] for doc in documents]
    rng.shuffle(documents)
    stats = Stats(documents=len(documents), sentences=sum(map(len, documents)))
    instances, start, done = [], time.time(), 0
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(create_instances_from_document(
                documents, index, vocab, max_seq_length, short_seq_prob, masked_lm_prob,
                max_predictions_per_seq, whole_word_mask, rng, stats,
            ))
            done += 1
            if log_every and done % log_every == 0:
                log(f"{done}/{dupe_factor * len(documents)} documents, {len(instances)} instances, "
                    f"{done / (time.time() - start):.0f} documents/s")
    rng.shuffle(instances)
    return instances, stats


# ---- TFRecords ---------------------------------------------------------------


def instance_to_example(instance, max_seq_length, max_predictions_per_seq):
    """A `tf.train.Example` with BERT's features, padded to the fixed lengths."""
    def pad(values, length, value=0):
        return list(values) + [value] * (length - len(values))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    n, p = len(instance.token_ids), len(instance.masked_lm_positions)
    if n > max_seq_length or p > max_predictions_per_seq:
        raise ValueError(f"Instance of {n} tokens / {p} predictions exceeds {max_seq_length} / "
                         f"{max_predictions_per_seq}")
    features = {
        "input_ids": ints(pad(instance.token_ids, max_seq_length)),
        "input_mask": ints(pad([1] * n, max_seq_length)),
        "segment_ids": ints(pad(instance.segment_ids, max_seq_length)),
        "masked_lm_positions": ints(pad(instance.masked_lm_positions, max_predictions_per_seq)),
        "masked_lm_ids": ints(pad(instance.masked_lm_ids, max_predictions_per_seq)),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
            value=pad([1.0] * p, max_predictions_per_seq, 0.0))),
        "next_sentence_labels": ints([int(instance.is_random_next)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def shard_paths(output_file, num_shards):
    """`output_file` itself for one shard, else `<output_file>-0000i-of-0000n`."""
    if num_shards == 1:
        return [output_file]
    return [f"{output_file}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def write_instances(instances, output_file, num_shards, max_seq_length, max_predictions_per_seq):
    """Writes instances round-robin over `num_shards` TFRecord files; returns their paths."""
    paths = shard_paths(output_file, num_shards)
    folder = output_file.rsplit("/", 1)[0] if "/" in output_file else ""
    if folder:
        tf.io.gfile.makedirs(folder)
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    try:
        for i, instance in enumerate(instances):
            example = instance_to_example(instance, max_seq_length, max_predictions_per_seq)
            writers[i % num_shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return paths


def create_pretraining_data(input_files, vocabulary, output_file, num_shards=1, max_seq_length=128,
                            max_predictions_per_seq=20, masked_lm_prob=0.15, short_seq_prob=0.1,
                            dupe_factor=10, whole_word_mask=False, split_into_sentences=False,
                            lowercase=True, seed=12345, log=logging.info):
    """Text files -> sharded TFRecords of BERT pretraining instances. Returns `(paths, stats)`.

    What `tools/create_pretraining_data.py` runs. `vocabulary` is a list of
    WordPiece tokens or a vocabulary file.
    """
    start = time.time()
    if isinstance(vocabulary, (str, os.PathLike)):  # checked here to name the file
        vocabulary = load_vocabulary(vocabulary, required=RESERVED_TOKENS)
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase)
    vocab = PretrainingVocab.from_tokens(tokenizer.get_vocabulary())
    documents = read_documents(input_files, split_into_sentences)
    log(f"Read {len(documents)} documents, {sum(map(len, documents))} sentences from "
        f"{len(input_files)} file(s) in {time.time() - start:.1f} s")
    documents = tokenize_documents(documents, tokenizer)
    log(f"Tokenized in {time.time() - start:.1f} s")
    instances, stats = create_instances(
        documents, vocab, max_seq_length, short_seq_prob, masked_lm_prob, max_predictions_per_seq,
        dupe_factor, whole_word_mask, seed, log=log,
    )
    log(f"Created {len(instances)} instances in {time.time() - start:.1f} s")
    paths = write_instances(instances, output_file, num_shards, max_seq_length, max_predictions_per_seq)
    log(f"Wrote {len(paths)} file(s) in {time.time() - start:.1f} s: {', '.join(paths)}")
    return paths, stats


def _record_lengths(path):
    """`(max_seq_length, max_predictions_per_seq)` of the records in `path`, from its first record."""
    for raw in tf.data.TFRecordDataset(path).take(1):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        missing = [name for name in FEATURE_NAMES if name not in feature]
        if missing:
            raise DataError(f"{path}: not BERT pretraining records (no features {missing})")
        return (len(feature["input_ids"].int64_list.value),
                len(feature["masked_lm_positions"].int64_list.value))
    raise DataError(f"{path}: no records")


def _to_model_inputs(batch, trim=True):
    """Google's features -> `(features, labels)` for `BertPretrainer`, trimmed to the longest row."""
    as_int32 = {k: tf.cast(v, tf.int32) for k, v in batch.items() if k != "masked_lm_weights"}
    if trim:
        length = tf.maximum(tf.reduce_max(tf.reduce_sum(as_int32["input_mask"], axis=1)), 1)
        for name in ("input_ids", "input_mask", "segment_ids"):
            as_int32[name] = as_int32[name][:, :length]
    features = {
        "token_ids": as_int32["input_ids"],
        "segment_ids": as_int32["segment_ids"],
        "padding_mask": as_int32["input_mask"] > 0,
        "masked_lm_positions": as_int32["masked_lm_positions"],
    }
    labels = {
        "masked_lm_ids": as_int32["masked_lm_ids"],
        "masked_lm_weights": batch["masked_lm_weights"],
        "next_sentence_labels": as_int32["next_sentence_labels"][:, 0],
    }
    return features, labels


def pretraining_dataset(file_pattern, batch_size, training, seed=0, input_context=None,
                        shuffle_buffer_size=10000, trim_padding=True):
    """`(features, labels)` batches from BERT pretraining TFRecords.

    Args:
        file_pattern: a glob, or a list/comma-separated string of globs.
        batch_size: per-replica batch size.
        training: shuffle files and records (seeded, new order each pass),
            repeat forever, drop the last partial batch. Else every record
            once, in file order.
        seed: shuffle seed.
        input_context: a `tf.distribute.InputContext`: pipelines take every
            n-th file when each gets at least one file, else every n-th record.
        trim_padding: cut each batch to its longest row (records are padded
            to max_seq_length); turn off for static shapes (TPU/XLA).
    """
    patterns = file_pattern.split(",") if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern.strip())})
    if not files:
        raise DataError(f"No files match {file_pattern}")
    seq_length, max_predictions = _record_lengths(files[0])
    n, index = ((input_context.num_input_pipelines, input_context.input_pipeline_id)
                if input_context else (1, 0))
    by_files = n > 1 and len(files) >= n
    ds = tf.data.Dataset.from_tensor_slices(files)
    if by_files:
        ds = ds.shard(n, index)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)) if training else 1)
    if n > 1 and not by_files:
        ds = ds.shard(n, index)
    if training:
        ds = ds.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    spec = {name: tf.io.FixedLenFeature([seq_length], tf.int64)
            for name in ("input_ids", "input_mask", "segment_ids")}
    spec.update({name: tf.io.FixedLenFeature([max_predictions], tf.int64)
                 for name in ("masked_lm_positions", "masked_lm_ids")})
    spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions], tf.float32)
    spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
    ds = ds.map(lambda records: _to_model_inputs(tf.io.parse_example(records, spec), trim_padding),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---- Dynamic masking from text -------------------------------------------------


def masked_text_dataset(documents, vocab, batch_size, training, seed=0, input_context=None,
                        max_seq_length=128, masked_lm_prob=0.15, max_predictions_per_seq=20):
    """`(features, labels)` batches with pairs and masks drawn inside `tf.data`.

    Each sentence that has a successor in its document is an A segment; B is
    that successor (label 0) or, with probability 1/2, a uniformly random
    sentence of another document (label 1). The pair is packed as
    `[CLS] A [SEP] B [SEP]` and truncated to `max_seq_length` (round robin,
    so the longer segment is cut). Masking is keras-hub's
    `MaskedLMMaskGenerator` (tensorflow-text's `mask_language_model`): exactly
    `ceil(masked_lm_prob * n)` of the n tokens other than
    [CLS]/[SEP]/[PAD] are chosen (at most `max_predictions_per_seq`), then
    80% [MASK] / 10% a random id of the whole vocabulary / 10% unchanged.
    Google's static masking chooses `round(masked_lm_prob * n_with_specials)`.
    No whole-word masking in this mode.

    Pairs and labels use stateless randomness from `(seed, batch index)`;
    masks come from stateful TF random ops (seeded by the global seed), so a
    new pass over the data sees new pairs and new masks.

    Args:
        documents: tokenized documents (lists of id arrays), from
            `tokenize_documents`.
        vocab: a `PretrainingVocab`.
        batch_size: per-replica batch size.
        training: shuffle (seeded, new order each pass), repeat forever,
            drop the last partial batch; else one pass in order.
        input_context: a `tf.distribute.InputContext`; pipelines take every
            n-th A sentence.
    """
    if len(documents) < 2:
        raise DataError(f"Need at least 2 documents for random next sentences; got {len(documents)}")
    sentences = [s for doc in documents for s in doc]
    lengths = np.array([len(doc) for doc in documents])
    doc_start = np.repeat(np.cumsum(lengths) - lengths, lengths)  # first sentence of each one's document
    doc_end = doc_start + np.repeat(lengths, lengths)
    has_next = np.arange(len(sentences)) + 1 < doc_end
    first_sentences = np.flatnonzero(has_next).astype(np.int64)
    if not len(first_sentences):
        raise DataError("No document has two sentences: cannot build next-sentence pairs (expected one sentence a "
                        "line and a blank line between documents, or split_sentences)")
    tokens = tf.RaggedTensor.from_row_lengths(
        np.concatenate(sentences).astype(np.int32), [len(s) for s in sentences])
    doc_start, doc_end = tf.constant(doc_start, tf.int64), tf.constant(doc_end, tf.int64)
    num_sentences = len(sentences)

    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=max_seq_length, start_value=vocab.cls_id, end_value=vocab.sep_id,
        pad_value=vocab.pad_id, truncate="round_robin", _allow_python_workflow=False,
    )
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=vocab.size, mask_selection_rate=masked_lm_prob, mask_token_id=vocab.mask_id,
        mask_selection_length=max_predictions_per_seq,
        unselectable_token_ids=[vocab.pad_id, vocab.cls_id, vocab.sep_id], dtype="float32",
    )
    pipeline = input_context.input_pipeline_id if input_context else 0

    def make_batch(batch_index, a):
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, pipeline], tf.int64), batch_index)
        coin, pick = tf.unstack(tf.random.stateless_uniform([2, tf.size(a)], seed=key), axis=0)
        is_random_next = coin < 0.5
        # A uniform sentence outside A's document: draw among the others, then skip over it.
        start, end = tf.gather(doc_start, a), tf.gather(doc_end, a)
        other = tf.cast(pick * tf.cast(num_sentences - (end - start), tf.float32), tf.int64)
        other = tf.where(other >= start, other + (end - start), other)
        b = tf.where(is_random_next, other, a + 1)
        token_ids, segment_ids = packer((tf.gather(tokens, a), tf.gather(tokens, b)))
        # Cut the padding the packer added beyond the longest pair of the batch.
        length = tf.reduce_max(tf.reduce_sum(tf.cast(token_ids != vocab.pad_id, tf.int32), axis=1))
        token_ids, segment_ids = token_ids[:, :length], segment_ids[:, :length]
        masked = masker(token_ids)
        features = {
            "token_ids": masked["token_ids"],
            "segment_ids": segment_ids,
            "padding_mask": token_ids != vocab.pad_id,
            "masked_lm_positions": tf.cast(masked["mask_positions"], tf.int32),
        }
        labels = {
            "masked_lm_ids": tf.cast(masked["mask_ids"], tf.int32),
            "masked_lm_weights": masked["mask_weights"],
            "next_sentence_labels": tf.cast(is_random_next, tf.int32),
        }
        return features, labels

    ds = tf.data.Dataset.from_tensor_slices(first_sentences)
    if input_context and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        ds = ds.shuffle(len(first_sentences), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=training).enumerate()
    # Sequential map: the masker's stateful random ops then run in a fixed order (reproducible).
    ds = ds.map(make_batch)
    return ds.prefetch(tf.data.AUTOTUNE)
