"""Translation losses and metrics over `translation_dataset` labels {target_ids, target_mask} [B, T]."""

import tensorflow as tf


def label_smoothed_cross_entropy(labels, logits, smoothing):
    """Per-token cross-entropy against (1 - ε)·one_hot + ε/V (Szegedy et al., 2016; Keras' convention).

    Equals `keras.losses.categorical_crossentropy(one_hot(labels) smoothed, logits)`
    without building the [B, T, V] one-hot: (1 - ε)·(−log p_y) + ε·mean_v(−log p_v).
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    nll = -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=log_probs.shape.rank - 1)
    if not smoothing:
        return nll
    return (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(log_probs, axis=-1)


def translation_loss(label_smoothing=0.1):
    """`fn(labels, logits) -> [B]` whose batch mean is the per-token mean over all real target tokens.

    As `losses.masked_lm_loss`: each example's summed loss is divided by the
    batch's mean number of target tokens, so long sentences weigh by their
    length (the usual NMT loss), while the Trainer averages per example.
    """
    def loss(labels, logits):
        weights = tf.cast(labels["target_mask"], tf.float32)
        per_token = label_smoothed_cross_entropy(labels["target_ids"], logits, label_smoothing)
        return tf.math.divide_no_nan(tf.reduce_sum(per_token * weights, -1), tf.reduce_mean(tf.reduce_sum(weights, -1)))

    return loss


def token_cross_entropy(labels, logits):
    """Metric: (summed unsmoothed cross-entropy, tokens) per example; the ratio is nats per target token."""
    weights = tf.cast(labels["target_mask"], tf.float32)
    per_token = label_smoothed_cross_entropy(labels["target_ids"], logits, 0.0)
    return tf.reduce_sum(per_token * weights, -1), tf.reduce_sum(weights, -1)


def token_accuracy(labels, logits):
    """Metric: (correct next tokens, tokens) per example under teacher forcing."""
    weights = tf.cast(labels["target_mask"], tf.float32)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predictions, tf.cast(labels["target_ids"], tf.int32)), tf.float32)
    return tf.reduce_sum(correct * weights, -1), tf.reduce_sum(weights, -1)
