"""Classify sentences with an exported SavedModel, the way a server would.

Imports only tensorflow and tensorflow_text (for the tokenizer ops in the
graph): no tfllm, no Keras model code. Usage:

    python tools/query_savedmodel.py EXPORT_VERSION_DIR "a gripping film" "dull and slow"
"""

import os
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.savedmodel_cli import fail  # imports only TensorFlow
from tools.savedmodel_cli import load_savedmodel


def main(argv):
    if len(argv) < 3:
        fail(f"usage: {argv[0]} SAVEDMODEL_DIR SENTENCE [SENTENCE ...]")
    model_dir, sentences = argv[1], argv[2:]
    serve = load_savedmodel(model_dir).signatures["serving_default"]
    if set(serve.structured_input_signature[1]) != {"text"} or not {"probabilities", "label_name"} <= set(
            serve.structured_outputs):
        fail(f"{model_dir}: not a single-text classifier export (serving_default takes "
             f"{sorted(serve.structured_input_signature[1])} and returns {sorted(serve.structured_outputs)}; "
             "expected text in, probabilities and label_name out)")
    outputs = serve(text=tf.constant(sentences))
    probabilities = outputs["probabilities"].numpy()
    for sentence, name, probs in zip(sentences, outputs["label_name"].numpy(), probabilities):
        print(f"{name.decode():>10}  p={probs.max():.3f}  {sentence}")


if __name__ == "__main__":
    main(sys.argv)
