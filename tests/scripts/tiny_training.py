"""A tiny model and generated data shared by the training tests and scripts."""

import time

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf

NUM_EXAMPLES = 96
SEQ_LEN = 4
VOCAB = 20
NUM_CLASSES = 3


def build_model(dropout=0.0):
    """Embedding -> mean -> Dense -> LayerNorm [-> Dropout] -> Dense, seeded initialisers."""
    def init(seed):
        return keras.initializers.GlorotUniform(seed=seed)

    inputs = keras.Input((SEQ_LEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, embeddings_initializer=init(1))(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(16, activation="relu", kernel_initializer=init(2))(x)
    x = keras.layers.LayerNormalization()(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=4)(x)
    outputs = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(3))(x)
    return keras.Model(inputs, outputs)


def data():
    rng = np.random.default_rng(0)
    features = rng.integers(0, VOCAB, size=(NUM_EXAMPLES, SEQ_LEN)).astype("int32")
    labels = (features.sum(axis=1) % NUM_CLASSES).astype("int32")
    return features, labels


def train_dataset_fn(global_batch_size):
    """Infinite, seeded shuffle: the same example order for any batch size."""
    features, labels = data()

    def dataset_fn(context):
        batch = context.get_per_replica_batch_size(global_batch_size)
        ds = tf.data.Dataset.from_tensor_slices((features, labels))
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        ds = ds.shuffle(NUM_EXAMPLES, seed=0).repeat()
        return ds.batch(batch, drop_remainder=True)

    return dataset_fn


def eval_dataset_fn(global_batch_size, num_examples=NUM_EXAMPLES):
    """Finite, no drop_remainder: the last batches are short or empty."""
    features, labels = data()

    def dataset_fn(context):
        batch = context.get_per_replica_batch_size(global_batch_size)
        ds = tf.data.Dataset.from_tensor_slices(
            (features[:num_examples], labels[:num_examples])
        )
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        return ds.batch(batch)

    return dataset_fn


def loss_fn(labels, logits):
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def accuracy_fn(labels, logits):
    return tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)


def numpy_eval(model, num_examples=NUM_EXAMPLES):
    """Reference loss/accuracy over the eval examples, computed in one batch."""
    features, labels = data()
    logits = model(features[:num_examples], training=False)
    return {
        "loss": float(np.mean(loss_fn(labels[:num_examples], logits))),
        "accuracy": float(np.mean(accuracy_fn(labels[:num_examples], logits))),
    }


def slow_down(trainer, seconds):
    """Make every host call of the trainer's step take `seconds` longer, as a bigger model would.

    Lets tests kill a run between checkpoints; the traced step is unchanged.
    """
    train_fn = trainer._train_fn

    def slow_train_fn(*args):
        time.sleep(seconds)
        return train_fn(*args)

    trainer._train_fn = slow_train_fn
    return trainer
