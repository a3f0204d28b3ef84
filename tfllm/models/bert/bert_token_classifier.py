"""BERT with a token-classification head (e.g. named-entity tagging)."""

import keras

from tfllm.models.bert.bert_backbone import Bert  # noqa: F401  (registers Bert for from_config)


@keras.saving.register_keras_serializable(package="tfllm")
class BertTokenClassifier(keras.Model):
    """A `Bert` backbone, dropout, and a dense layer from each token's vector to class logits.

    As BERT's NER head (Devlin et al., 2019, 5.3): logits on every position;
    which positions count (each word's first WordPiece) is up to the labels'
    weights (`tfllm.data.token_classification`).

    Args:
        backbone: a `Bert`.
        num_classes: number of tags.
        dropout: dropout before the output layer.

    Outputs float32 logits [B, T, num_classes] under any dtype policy.
    """

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        sequence = keras.layers.Dropout(dropout, name="classifier_dropout")(sequence)
        logits = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
            dtype=backbone.dtype_policy,
            name="logits",
        )(sequence)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
