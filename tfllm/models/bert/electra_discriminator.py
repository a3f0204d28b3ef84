"""ELECTRA's discriminator: a BERT-style encoder that scores each token "replaced or original"."""

import keras
from keras import ops

from tfllm.layers.feed_forward import get_activation
from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32
from tfllm.models.task import dense_logits


@keras.saving.register_keras_serializable(package="tfllm")
class ElectraDiscriminator(Task):
    """A `Bert` backbone and ELECTRA's replaced-token-detection head (Clark et al., 2020).

    The head is `ElectraForPreTraining`'s `discriminator_predictions`: a dense
    layer with the encoder's activation, then one logit per token (positive:
    "this token was replaced by the generator"). keras-hub has no ELECTRA
    pretraining task, hence this one.

    Args:
        backbone: a `Bert` (e.g. `Bert.from_preset("electra_small")`).

    Outputs float32 logits [B, T] (padding positions included; mask them).

    Example:
    >>> electra = ElectraDiscriminator.from_pretrained("hf://google/electra-small-discriminator")
    >>> replaced = electra(features) > 0
    """

    head_args = ()
    pretrained_task = "electra_discriminator"
    backbone_class = Bert

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        hidden = keras.layers.Dense(
            backbone.hidden_dim, activation=get_activation(backbone.activation), dtype=backbone.dtype_policy,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
            name="discriminator_dense",
        )(sequence)
        logits = dense_logits(backbone, 1, "discriminator_logits")(hidden)
        logits = as_float32(ops.squeeze(logits, -1))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
