"""BERT with a sequence-classification head."""

import keras
from keras import ops

from tfllm.models.bert.bert_backbone import Bert


def masked_mean(sequence, padding_mask):
    """Mean of `sequence` [B, T, D] over the positions where `padding_mask` [B, T] is True."""
    weights = ops.cast(padding_mask, sequence.dtype)[:, :, None]
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tfllm")
class BertClassifier(keras.Model):
    """A `Bert` backbone, a pooled sentence vector, dropout, and a dense layer to class logits.

    Args:
        backbone: a `Bert`.
        num_classes: number of classes.
        pooling: "cls" (the backbone's pooled [CLS] output, as in BERT) or
            "mean" (masked mean of the sequence output).
        dropout: dropout before the output layer.

    Outputs float32 logits [B, num_classes] under any dtype policy.
    """

    def __init__(self, backbone, num_classes, pooling="cls", dropout=0.1, **kwargs):
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        inputs = backbone.input
        outputs = backbone(inputs)
        if pooling == "cls":
            pooled = outputs["pooled_output"]
        else:
            pooled = masked_mean(outputs["sequence_output"], inputs["padding_mask"])
        pooled = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
        logits = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
            dtype=backbone.dtype_policy,
            name="logits",
        )(pooled)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """A `BertClassifier` from a tfllm, HF or Google folder: its stored head, or a new one with `num_classes=`."""
        from tfllm.models.pretrained import load_model  # noqa: PLC0415  (avoids an import cycle)

        return load_model(path, "bert_classifier", **kwargs)

    def save_pretrained(self, path, tokenizer=None):
        """Write config.json + model.weights.h5 (+ tokenizer assets) that `from_pretrained` loads."""
        from tfllm.models.pretrained import save_pretrained  # noqa: PLC0415

        return save_pretrained(self, path, tokenizer)
