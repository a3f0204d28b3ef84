"""BERT with a sequence-classification head."""

import keras
from keras import ops

from tfllm.errors import ConfigError
from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32
from tfllm.models.task import dense_logits


def masked_mean(sequence, padding_mask):
    """Mean of `sequence` [B, T, D] over the positions where `padding_mask` [B, T] is True."""
    weights = ops.cast(padding_mask, sequence.dtype)[:, :, None]
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tfllm")
class BertClassifier(Task):
    """A `Bert` backbone, a pooled sentence vector, dropout, and a dense layer to class logits.

    Args:
        backbone: a `Bert`.
        num_classes: number of classes.
        pooling: "cls" (the backbone's pooled [CLS] output, as in BERT) or
            "mean" (masked mean of the sequence output).
        dropout: dropout before the output layer.

    Outputs float32 logits [B, num_classes] under any dtype policy.
    """

    head_args = ("num_classes", "pooling", "dropout")
    pretrained_task = "bert_classifier"
    backbone_class = Bert

    def __init__(self, backbone, num_classes, pooling="cls", dropout=0.1, **kwargs):
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        inputs = backbone.input
        outputs = backbone(inputs)
        if pooling == "cls":
            pooled = outputs["pooled_output"]
        else:
            pooled = masked_mean(outputs["sequence_output"], inputs["padding_mask"])
        pooled = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
        logits = dense_logits(backbone, num_classes, "logits")(pooled)
        logits = as_float32(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout
