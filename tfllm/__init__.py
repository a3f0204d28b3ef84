"""tfllm: BERT- and GPT-style language models for Keras 3 and TensorFlow."""

import os

# tfllm is built on Keras 3's TensorFlow backend (tf.distribute, SavedModel
# export, tensorflow-text ops). Set it before Keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
