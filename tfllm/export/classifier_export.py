"""Export a text classifier as a SavedModel: raw strings in, probabilities and labels out."""

import tensorflow as tf

from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import string_batch_spec

# Warmup requests: one sentence and a small batch (the two shapes servers see most).
WARMUP_TEXTS = ["This is a short example sentence.",
                "A second, slightly longer example sentence for the warmup batch of the model."]


class ClassifierServingModule(tf.Module):
    """Tokenizer + model in one graph, with a `serving_default` signature over raw strings.

    Signature `serving_default`:
        inputs:  `text`: string [batch]
        outputs: `probabilities`: float32 [batch, num_classes],
                 `label`: int32 [batch] (argmax),
                 `label_name`: string [batch] (from `label_names`, else the id as text).
    Texts longer than the preprocessor's `sequence_length` tokens are truncated.

    With `token_ids_signatures=True` two more signatures split the work, for
    clients that tokenize themselves and to measure the tokenizer's share of
    latency (tools/serve_bench.py):
        `tokenize`: `text` -> `token_ids`, `segment_ids` int32 [batch, sequence_length],
            `padding_mask` bool [batch, sequence_length];
        `classify_token_ids`: those three -> the outputs of `serving_default`.
    """

    def __init__(self, preprocessor, model, label_names=None, token_ids_signatures=False):
        super().__init__()
        self.token_ids_signatures = token_ids_signatures
        self.preprocessor = preprocessor
        self.model = model
        num_classes = model.output.shape[-1]
        names = label_names or [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} label names given for {num_classes} classes")
        self.label_names = tf.constant(names)
        if token_ids_signatures:  # Only then: tf.saved_model.save traces every tf.function it finds.
            self.tokenize = tf.function(self._tokenize, input_signature=[string_batch_spec("text")])
            self.classify_token_ids = tf.function(self._classify_token_ids, input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
                tf.TensorSpec([None, None], tf.bool, name="padding_mask"),
            ])

    @tf.function(input_signature=[string_batch_spec("text")])
    def serve(self, text):
        return self._classify(self.preprocessor(check_string_batch(text, "text")))

    def _tokenize(self, text):
        return self.preprocessor(check_string_batch(text, "text"))

    def _classify_token_ids(self, token_ids, segment_ids, padding_mask):
        return self._classify(dict(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask))

    def _classify(self, features):
        logits = self.model(features, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label": label,
            "label_name": tf.gather(self.label_names, label),
        }

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        signatures = {"serving_default": self.serve}
        if self.token_ids_signatures:
            signatures.update(tokenize=self.tokenize, classify_token_ids=self.classify_token_ids)
        return signatures

    def warmup_requests(self):
        return [("serving_default", {"text": WARMUP_TEXTS[:1]}), ("serving_default", {"text": WARMUP_TEXTS})]


def export_classifier(preprocessor, model, export_dir, model_name="classifier", version=1,
                      label_names=None, warmup=True, token_ids_signatures=False):
    """Write the SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path."""
    module = ClassifierServingModule(preprocessor, model, label_names, token_ids_signatures)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
