"""tfllm: BERT- and GPT-style language models for Keras 3 and TensorFlow."""

import os

# tfllm is built on Keras 3's TensorFlow backend (tf.distribute, SavedModel
# export, tensorflow-text ops). Set it before Keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# TensorFlow's oneDNN CPU kernels (matmul, batch matmul, and XLA's CPU dots)
# are on by default only on CPUs with AVX-512/AMX; elsewhere (e.g. AVX2 AMD
# EPYC) TensorFlow leaves them off, and there they made training 1.3x (GPT-2
# L6 H384) to 1.5x (nanoGPT's char model) faster: `tools/benchmark.py`,
# README "Speed". Results differ from Eigen's only by float round-off. Takes
# effect when tfllm is imported before TensorFlow; set
# TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's own choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
