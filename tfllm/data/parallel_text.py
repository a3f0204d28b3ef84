"""Parallel text for translation: line-aligned files, length filtering, teacher forcing, length-bucketed batches.

Sentences are tokenized once, up front, in big in-graph batches; the
pipeline then only shuffles, buckets by length and pads each batch to its
longest row (as `text_classification.py`).

Features: `encoder_token_ids`, `encoder_padding_mask` [B, S];
`decoder_token_ids` = [BOS] + target, `decoder_padding_mask` [B, T].
Labels: `target_ids` = target + [EOS] and `target_mask` [B, T]. Padding is 0.
"""

import tensorflow as tf
from absl import logging

from tfllm.data.batching import batch_by_length
from tfllm.data.errors import DataError
from tfllm.data.text_files import read_text
from tfllm.tokenizers.strings import token_id_lists


def read_lines(path):
    """The lines of a UTF-8 text file, without line endings."""
    return read_text(path).splitlines()


def read_parallel_text(source_path, target_path):
    """(source lines, target lines) of two line-aligned files; line i of one translates line i of the other.

    Raises `DataError` for a missing or empty file, files of different
    lengths, or bytes that are not UTF-8.
    """
    sources, targets = read_lines(source_path), read_lines(target_path)
    for path, lines in [(source_path, sources), (target_path, targets)]:
        if not any(line.strip() for line in lines):
            raise DataError(f"{path}: no text ({len(lines)} lines, all empty); expected one sentence per "
                            f"line, line-aligned with its translation")
    if len(sources) != len(targets):
        raise DataError(
            f"parallel files differ in length: {source_path} has {len(sources)} lines, "
            f"{target_path} has {len(targets)}; line i of one must translate line i of the other"
        )
    return sources, targets


def tokenize(tokenizer, texts, batch_size=8192):
    """Token ids of each text (lists of int), tokenized in-graph in big batches."""
    return token_id_lists(tokenizer, texts, batch_size)


def filter_by_length(source_ids, target_ids, max_source_length, max_target_length, name="data"):
    """Drops pairs with an empty side or too long a side; logs how many. Returns (sources, targets, dropped).

    The target limit counts the added BOS/EOS: a target of n tokens needs
    n + 1 <= max_target_length. `name` (the file, or file and split) names
    the data in the log line and in the `DataError` raised when no pair is
    left.
    """
    keep = [
        0 < len(s) <= max_source_length and 0 < len(t) and len(t) + 1 <= max_target_length
        for s, t in zip(source_ids, target_ids)
    ]
    dropped = len(keep) - sum(keep)
    logging.info("%s: dropped %d of %d pairs (an empty side, or over %d source / %d target tokens "
                 "with BOS/EOS); %d left", name, dropped, len(keep), max_source_length, max_target_length,
                 sum(keep))
    if not any(keep):
        raise DataError(f"{name}: all {len(keep)} pairs dropped (an empty side, or over {max_source_length} "
                        f"source / {max_target_length} target tokens with BOS/EOS); expected pairs within "
                        f"the length limits")
    return ([s for s, k in zip(source_ids, keep) if k], [t for t, k in zip(target_ids, keep) if k], dropped)


def teacher_forcing(target, bos_id, eos_id):
    """(decoder input, labels) = ([BOS] + target, target + [EOS])."""
    return [bos_id, *target], [*target, eos_id]


def translation_dataset(
    source_ids,
    target_ids,
    batch_size,
    training,
    bos_id,
    eos_id,
    seed=None,
    input_context=None,
    bucket_boundaries=None,
    shuffle_buffer_size=None,
):
    """A `tf.data.Dataset` of `(features, labels)` batches (see the module docstring).

    Args:
        source_ids, target_ids: lists of token-id lists (already filtered).
        batch_size: pairs per batch on ONE replica.
        training: shuffle (seeded, reshuffled each epoch), repeat, and group
            pairs of similar length (the longer side) into batches of exactly
            `batch_size`; else each pair once, in order, padded per batch.
        input_context: a `tf.distribute.InputContext`; each input pipeline
            keeps every `num_input_pipelines`-th pair.
        bucket_boundaries: upper-exclusive length boundaries; default
            `default_bucket_boundaries(longest pair)`.
    """
    if len(source_ids) != len(target_ids):
        raise DataError(f"{len(source_ids)} sources but {len(target_ids)} targets")
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        source_ids, target_ids = source_ids[i::n], target_ids[i::n]
    decoder_ids, label_ids = zip(*(teacher_forcing(t, bos_id, eos_id) for t in target_ids)) if target_ids else ((), ())

    def ragged(rows):
        return tf.ragged.constant(list(rows), dtype=tf.int32, row_splits_dtype=tf.int64)

    ds = tf.data.Dataset.from_tensor_slices((ragged(source_ids), ragged(decoder_ids), ragged(label_ids)))

    def to_example(source, decoder, labels):
        features = {
            "encoder_token_ids": source,
            "encoder_padding_mask": tf.ones_like(source, tf.bool),
            "decoder_token_ids": decoder,
            "decoder_padding_mask": tf.ones_like(decoder, tf.bool),
        }
        return features, {"target_ids": labels, "target_mask": tf.ones_like(labels, tf.bool)}

    ds = ds.map(to_example)
    longest = max([len(s) for s in source_ids] + [len(t) for t in decoder_ids] + [1])
    return batch_by_length(
        ds, batch_size, training, num_examples=len(source_ids), max_length=longest, seed=seed,
        shuffle_buffer_size=shuffle_buffer_size, bucket_boundaries=bucket_boundaries,
        length_fn=lambda x, y: tf.maximum(tf.shape(x["encoder_token_ids"])[0], tf.shape(x["decoder_token_ids"])[0]),
    )
