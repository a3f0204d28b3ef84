"""A BERT-style encoder with a masked-LM head only (RoBERTa's pretraining: no next-sentence prediction)."""

import keras
from keras_hub.layers import MaskedLMHead

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32


@keras.saving.register_keras_serializable(package="tfllm")
class BertMaskedLM(Task):
    """`Bert` + the MLM head of `BertPretrainer`, without NSP (as `RobertaForMaskedLM`, `BertForMaskedLM`).

    The head is keras-hub's `MaskedLMHead`: dense + GELU + LayerNorm, decoder
    tied to the token embedding, output bias (RoBERTa's `lm_head.*`).

    Inputs: the backbone's dict plus `masked_lm_positions` (int32 [B, P]).
    Outputs: float32 logits [B, P, V] at those positions.

    Example:
    >>> mlm = BertMaskedLM.from_pretrained("hf://FacebookAI/roberta-base")
    >>> logits = mlm({**features, "masked_lm_positions": positions})
    """

    head_args = ()
    pretrained_task = "bert_masked_lm"
    backbone_class = Bert

    def __init__(self, backbone, **kwargs):
        inputs = dict(backbone.input)
        inputs["masked_lm_positions"] = keras.Input(shape=(None,), dtype="int32", name="masked_lm_positions")
        sequence = backbone({k: inputs[k] for k in backbone.input})["sequence_output"]
        mlm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation="gelu",  # exact erf GELU, as BERT and RoBERTa
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        logits = mlm_head(sequence, mask_positions=inputs["masked_lm_positions"])
        super().__init__(inputs=inputs, outputs=as_float32(logits, "mlm_logits"), **kwargs)
        self.backbone = backbone
        self.mlm_head = mlm_head
