"""Batching every fine-tuning pipeline shares: ordered padded batches for evaluation,
shuffled length-bucketed batches for training."""

import tensorflow as tf


def default_bucket_boundaries(sequence_length):
    """Upper-exclusive length boundaries: buckets of lengths <=8, <=16, ... <=L.

    Steps of 8 up to 32 (where most short texts fall), then about x1.5.
    """
    edges = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    return [edge + 1 for edge in edges if edge < sequence_length]


def token_ids_length(features, *labels):
    return tf.shape(features["token_ids"])[0]


def batch_by_length(ds, batch_size, training, num_examples, max_length, seed=None,
                    shuffle_buffer_size=None, bucket_boundaries=None, length_fn=token_ids_length,
                    bucket_by_length=True):
    """Batches a dataset of variable-length examples.

    Evaluation (`training=False`): every example once, in order, each batch
    padded to its longest row. Training: shuffled (a buffer of all
    `num_examples` unless `shuffle_buffer_size`), repeated forever, and
    grouped into buckets of similar length (`bucket_boundaries`, default
    `default_bucket_boundaries(max_length)`) so little compute goes to
    padding; full batches only, so every step has the same batch size.
    `bucket_by_length=False`: batches of consecutive shuffled examples (any
    lengths together), each padded to its longest row.
    """
    if not training:
        return ds.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)
    ds = ds.shuffle(shuffle_buffer_size or max(num_examples, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat()
    if not bucket_by_length:
        return ds.padded_batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    if bucket_boundaries is None:
        bucket_boundaries = default_bucket_boundaries(max_length)
    ds = ds.bucket_by_sequence_length(
        element_length_func=length_fn,
        bucket_boundaries=bucket_boundaries,
        bucket_batch_sizes=[batch_size] * (len(bucket_boundaries) + 1),
        drop_remainder=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
