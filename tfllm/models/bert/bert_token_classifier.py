"""BERT with a token-classification head (e.g. named-entity tagging)."""

import keras

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32
from tfllm.models.task import dense_logits


@keras.saving.register_keras_serializable(package="tfllm")
class BertTokenClassifier(Task):
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

    head_args = ("num_classes", "dropout")
    pretrained_task = "bert_token_classifier"
    backbone_class = Bert

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        sequence = keras.layers.Dropout(dropout, name="classifier_dropout")(sequence)
        # N(0, initializer_range), as transformers initialises its token classifier, not truncated: on short
        # NER fine-tuning the truncated draw cost several F1 points (README, "NER and PEFT from MiniLM").
        initializer = keras.initializers.RandomNormal(stddev=backbone.initializer_range)
        logits = dense_logits(backbone, num_classes, "logits", initializer)(sequence)
        logits = as_float32(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout
