"""BERT with a span head for extractive question answering (SQuAD)."""

import keras
from keras import ops

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32
from tfllm.models.task import dense_logits

# Added to padding positions: far below any real logit, yet finite, so a
# softmax over them is exactly 0 and no NaN/inf reaches the loss.
PADDING_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="tfllm")
class BertSpanQA(Task):
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

    head_args = ()
    pretrained_task = "bert_span_qa"
    backbone_class = Bert

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = dense_logits(backbone, 2, "span_logits")(sequence)
        logits = as_float32(logits)
        padding_mask = inputs["padding_mask"]
        outputs = {
            name: ops.where(padding_mask, logits[..., i], PADDING_LOGIT)
            for i, name in enumerate(("start_logits", "end_logits"))
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
