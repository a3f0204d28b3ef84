"""Masked per-token loss and metrics for token classification, in the Trainer's form.

labels = `{"labels": int [B, T], "label_weights": float [B, T]}` (weight 1 on
each word's first WordPiece, 0 elsewhere), outputs = logits `[B, T, C]`.
"""

import tensorflow as tf


def _weighted_token_sums(labels, logits):
    """Per example: (sum of weighted cross-entropy, sum of weights), each [B]."""
    weights = tf.cast(labels["label_weights"], tf.float32)
    per_token = tf.keras.losses.sparse_categorical_crossentropy(
        labels["labels"], tf.cast(logits, tf.float32), from_logits=True
    )
    return tf.reduce_sum(per_token * weights, -1), tf.reduce_sum(weights, -1)


def _sum_over_replicas(value):
    """Sum over the replicas in sync (inside `strategy.run`); the value itself elsewhere."""
    context = tf.distribute.get_replica_context()
    if context is None:  # Cross-replica context: nothing to sum with.
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def masked_token_loss(labels, logits):
    """Per-example loss [B] whose mean over the global batch is the mean over all its labelled tokens.

    The Trainer takes `sum(per-example loss) / global_batch_size`, summed over
    replicas. Scaling each example's weighted sum by `N / W` (examples and
    labelled tokens of the whole global batch, all-reduced over replicas)
    makes that `sum(w * ce) / sum(w)` over the global batch: every labelled
    token weighs the same, however the words fall into sentences and
    replicas (a per-sentence mean would make words of short sentences
    weigh more). The sums come from labels only, so no gradient flows
    through the all-reduce. With gradient accumulation each micro-batch is
    a token mean, and those are averaged.
    """
    loss_sum, weight_sum = _weighted_token_sums(labels, logits)
    num_examples = _sum_over_replicas(tf.cast(tf.shape(loss_sum)[0], tf.float32))
    num_tokens = _sum_over_replicas(tf.reduce_sum(weight_sum))
    return loss_sum * tf.math.divide_no_nan(num_examples, num_tokens)


def token_cross_entropy(labels, logits):
    """Metric: `(values, weights)` whose ratio is the mean cross-entropy per labelled token."""
    return _weighted_token_sums(labels, logits)


def token_accuracy(labels, logits):
    """Metric: `(correct, weights)` per example; the Trainer's ratio is the accuracy over labelled tokens."""
    weights = tf.cast(labels["label_weights"], tf.float32)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predictions, tf.cast(labels["labels"], tf.int32)), tf.float32)
    return tf.reduce_sum(correct * weights, -1), tf.reduce_sum(weights, -1)
