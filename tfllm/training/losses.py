"""Per-example losses and metrics in the form the Trainer takes: fn(labels, outputs) -> [B]."""

import tensorflow as tf


def classification_loss(labels, logits):
    """Softmax cross-entropy per example."""
    return tf.keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32), from_logits=True)


def classification_accuracy(labels, logits):
    """1.0 where the argmax is the label."""
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32)


def token_loss(labels, logits):
    """Mean cross-entropy over the tokens of each sequence: [B, T] labels, [B, T, V] logits -> [B]."""
    per_token = tf.keras.losses.sparse_categorical_crossentropy(
        labels, tf.cast(logits, tf.float32), from_logits=True
    )
    return tf.reduce_mean(per_token, axis=-1)


def token_accuracy(labels, logits):
    """Fraction of tokens predicted right, per sequence."""
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32), -1)
