"""BERT with a span head for extractive question answering (SQuAD)."""

import keras
from keras import ops

# Added to padding positions: far below any real logit, yet finite, so a
# softmax over them is exactly 0 and no NaN/inf reaches the loss.
PADDING_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="tfllm")
class BertSpanQA(keras.Model):
    """A `Bert` backbone and a dense layer giving each token a start and an end logit.

    As BERT's SQuAD head (and Hugging Face's `BertForQuestionAnswering`):
    one linear layer on the sequence output, no extra dropout (the encoder's
    last layer already has it). Padding positions get `PADDING_LOGIT`, so
    batches padded to different lengths give the same softmax. `[CLS]`,
    question and `[SEP]` positions are left as they are: training targets
    `[CLS]` in windows without the answer, and decoding
    (`tfllm.data.span_decoding`) only picks spans in the context.

    Args:
        backbone: a `Bert`.

    Outputs a dict of float32 `start_logits` and `end_logits`, each `[B, T]`,
    under any dtype policy.
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = keras.layers.Dense(
            2,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
            dtype=backbone.dtype_policy,
            name="span_logits",
        )(sequence)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        padding_mask = inputs["padding_mask"]
        outputs = {
            name: ops.where(padding_mask, logits[..., i], PADDING_LOGIT)
            for i, name in enumerate(("start_logits", "end_logits"))
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
