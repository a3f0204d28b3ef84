"""Per-example losses and metrics in the form the Trainer takes: fn(labels, outputs) -> [B]."""

import tensorflow as tf


def classification_loss(labels, logits):
    """Softmax cross-entropy per example."""
    return tf.keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32), from_logits=True)


def classification_accuracy(labels, logits):
    """1.0 where the argmax is the label."""
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32)


def regression_loss(labels, outputs):
    """Squared error per example, of a one-output model's `[B, 1]` score and a float label `[B]`."""
    scores = tf.cast(outputs, tf.float32)[:, 0]
    return tf.square(scores - tf.cast(labels, tf.float32))


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


# ---- BERT pretraining: labels = {masked_lm_ids, masked_lm_weights, next_sentence_labels},
# outputs = BertPretrainer's {mlm_logits [B, P, V], nsp_logits [B, 2]}.


def _masked_lm_sums(labels, outputs):
    """Per example: (sum of weighted masked-LM cross-entropy, sum of weights), each [B]."""
    weights = tf.cast(labels["masked_lm_weights"], tf.float32)
    per_token = tf.keras.losses.sparse_categorical_crossentropy(
        labels["masked_lm_ids"], tf.cast(outputs["mlm_logits"], tf.float32), from_logits=True
    )
    return tf.reduce_sum(per_token * weights, -1), tf.reduce_sum(weights, -1)


def masked_lm_loss(labels, outputs):
    """Masked-LM loss per example, scaled so its batch mean is BERT's per-token mean.

    BERT averages the cross-entropy over all real predictions of the batch
    (`sum(w * ce) / sum(w)`), not per sequence. The Trainer averages
    per-example values, so each example's weighted sum is divided by the
    batch's mean number of predictions. (Under several replicas this is each
    replica's per-token mean, averaged, as BERT's TPU loss.)
    """
    loss_sum, weight_sum = _masked_lm_sums(labels, outputs)
    return tf.math.divide_no_nan(loss_sum, tf.reduce_mean(weight_sum))


def next_sentence_loss(labels, outputs):
    """Next-sentence cross-entropy per example (label 1 = random next)."""
    return classification_loss(labels["next_sentence_labels"], outputs["nsp_logits"])


def pretraining_loss(labels, outputs):
    """BERT's pretraining loss: masked-LM + next-sentence cross-entropy, per example [B]."""
    return masked_lm_loss(labels, outputs) + next_sentence_loss(labels, outputs)


def masked_lm_cross_entropy(labels, outputs):
    """Metric: `(values, weights)` whose ratio is the mean cross-entropy per predicted token."""
    return _masked_lm_sums(labels, outputs)


def masked_lm_accuracy(labels, outputs):
    """Metric: `(correct, weights)` per example; the Trainer's ratio is the per-token accuracy."""
    weights = tf.cast(labels["masked_lm_weights"], tf.float32)
    predictions = tf.argmax(outputs["mlm_logits"], axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predictions, tf.cast(labels["masked_lm_ids"], tf.int32)), tf.float32)
    return tf.reduce_sum(correct * weights, -1), tf.reduce_sum(weights, -1)


def next_sentence_accuracy(labels, outputs):
    """Metric: 1.0 where the next-sentence prediction is right."""
    return classification_accuracy(labels["next_sentence_labels"], outputs["nsp_logits"])
