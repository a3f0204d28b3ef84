"""What the server-side tools share (query_savedmodel.py, rest_predict.py): one-line errors, loading an export.

Imports only TensorFlow: these tools run where a server runs, without tfllm.
"""

import sys

import tensorflow as tf


def fail(message):
    """Bad input: one line on stderr and exit status 2, as tfllm's recipes and tools do."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def load_savedmodel(path):
    """`tf.saved_model.load(path)`, or a one-line error when there is no SavedModel there."""
    try:
        return tf.saved_model.load(path)
    except OSError as e:  # no saved_model.pb at path
        fail(f"{path}: {' '.join(str(e).split())}")
