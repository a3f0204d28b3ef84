"""Export a text classifier as a SavedModel: raw strings in, probabilities and labels out."""

import tensorflow as tf

from tfllm.export.serving_layout import save_atomically
from tfllm.export.serving_layout import version_dir


class ClassifierServingModule(tf.Module):
    """Tokenizer + model in one graph, with a `serving_default` signature over raw strings.

    Signature `serving_default`:
        inputs:  `text`: string [batch]
        outputs: `probabilities`: float32 [batch, num_classes],
                 `label`: int32 [batch] (argmax),
                 `label_name`: string [batch] (from `label_names`, else the id as text).
    """

    def __init__(self, preprocessor, model, label_names=None):
        super().__init__()
        self.preprocessor = preprocessor
        self.model = model
        num_classes = model.output.shape[-1]
        names = label_names or [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} label names given for {num_classes} classes")
        self.label_names = tf.constant(names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        features = self.preprocessor(text)
        logits = self.model(features, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label": label,
            "label_name": tf.gather(self.label_names, label),
        }


def export_classifier(preprocessor, model, export_dir, model_name="classifier", version=1,
                      label_names=None):
    """Write the SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path."""
    module = ClassifierServingModule(preprocessor, model, label_names)
    signatures = {"serving_default": module.serve.get_concrete_function()}
    return save_atomically(
        lambda path: tf.saved_model.save(module, path, signatures=signatures),
        version_dir(export_dir, model_name, version),
    )
