"""Export a BERT encoder as a sentence-embedding SavedModel: raw strings in, sentence vectors out."""

import tensorflow as tf

from tfllm.export.classifier_export import WARMUP_TEXTS
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import string_batch_spec
from tfllm.export.serving_layout import trim_padding
from tfllm.models.bert.bert_classifier import masked_mean


class EmbeddingsServingModule(tf.Module):
    """Tokenizer + `Bert` backbone in one graph, two sentence vectors per text.

    Signature `serving_default`:
        inputs:  `text`: string [batch]
        outputs: `pooled_output`: float32 [batch, hidden] (BERT's pooler: tanh(dense([CLS]))),
                 `mean_pooled_output`: float32 [batch, hidden] (mean of the token vectors over
                 the real tokens, [CLS] and [SEP] included; the sentence-transformers choice).
    Texts longer than the preprocessor's `sequence_length` tokens are truncated.
    With `dynamic_length=True` (the default) the backbone runs on the batch
    padded to its longest row rounded up to 8 tokens (`trim_padding`): the
    same vectors, less compute for short texts.
    """

    def __init__(self, preprocessor, backbone, dynamic_length=True):
        super().__init__()
        self.preprocessor = preprocessor
        self.backbone = backbone
        self.dynamic_length = dynamic_length

    @tf.function(input_signature=[string_batch_spec("text")], autograph=False)
    def serve(self, text):
        features = self.preprocessor(check_string_batch(text, "text"))
        if self.dynamic_length:
            features = trim_padding(features)
        outputs = self.backbone(features, training=False)
        sequence = tf.cast(outputs["sequence_output"], tf.float32)
        return {
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "mean_pooled_output": masked_mean(sequence, features["padding_mask"]),
        }

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        return {"serving_default": self.serve}

    def warmup_requests(self):
        return [("serving_default", {"text": WARMUP_TEXTS[:1]}), ("serving_default", {"text": WARMUP_TEXTS})]


def export_embeddings(preprocessor, backbone, export_dir, model_name="embeddings", version=1, warmup=True,
                      dynamic_length=True):
    """Write the embedding SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path.

    `backbone` is a `Bert` (a classifier's or tagger's `.backbone` works too); `dynamic_length=False`
    pads every batch to the full `sequence_length`.
    """
    module = EmbeddingsServingModule(preprocessor, backbone, dynamic_length)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
