"""BERT with its pretraining heads: masked-LM over chosen positions and next-sentence prediction."""

import keras
from keras_hub.layers import MaskedLMHead

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.task import Task
from tfllm.models.task import as_float32


@keras.saving.register_keras_serializable(package="tfllm")
class BertPretrainer(Task):
    """`Bert` + MLM head + NSP head, as in Devlin et al. (2019).

    The MLM head is keras-hub's `MaskedLMHead` (dense + GELU + LayerNorm,
    decoder tied to the token embedding, output bias): the same layout as
    BERT's `cls/predictions/*` weights. The NSP head is a dense layer over the
    pooled [CLS] output (`cls/seq_relationship/*`).

    Inputs: the backbone's dict plus `masked_lm_positions` (int32 [B, P]).
    Outputs: `{"mlm_logits": float32 [B, P, V], "nsp_logits": float32 [B, 2]}`.
    """

    head_args = ()
    pretrained_task = "bert_pretrainer"
    backbone_class = Bert

    def __init__(self, backbone, **kwargs):
        inputs = dict(backbone.input)
        inputs["masked_lm_positions"] = keras.Input(shape=(None,), dtype="int32", name="masked_lm_positions")
        outputs = backbone({k: inputs[k] for k in backbone.input})
        init = keras.initializers.TruncatedNormal(stddev=backbone.initializer_range)
        mlm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation="gelu",  # Keras 3 default: exact erf GELU, as BERT
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            kernel_initializer=init,
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        nsp_head = keras.layers.Dense(2, kernel_initializer=init, dtype=backbone.dtype_policy, name="nsp_head")
        mlm_logits = mlm_head(outputs["sequence_output"], mask_positions=inputs["masked_lm_positions"])
        nsp_logits = nsp_head(outputs["pooled_output"])
        super().__init__(
            inputs=inputs,
            outputs={"mlm_logits": as_float32(mlm_logits, "mlm_logits"),
                     "nsp_logits": as_float32(nsp_logits, "nsp_logits")},
            **kwargs,
        )
        self.backbone = backbone
        self.mlm_head = mlm_head
        self.nsp_head = nsp_head
