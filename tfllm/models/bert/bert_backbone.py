"""The BERT encoder: embeddings, a stack of post-LN encoder blocks, and the [CLS] pooler."""

import keras
from keras import ops

from tfllm.layers import TransformerEmbedding
from tfllm.layers import TransformerEncoderBlock
from tfllm.models.bert.bert_presets import BERT_PRESETS
from tfllm.models.presets import PresetMixin
from tfllm.models.pretrained import PretrainedMixin


@keras.saving.register_keras_serializable(package="tfllm")
class Bert(PresetMixin, PretrainedMixin, keras.Model):
    """BERT backbone (Devlin et al., 2019).

    Inputs: a dict with `token_ids` (int32 [B, T]), `segment_ids` (int32
    [B, T]) and `padding_mask` (bool [B, T], True for real tokens).
    Outputs: a dict with `sequence_output` [B, T, D] and `pooled_output`
    [B, D] (tanh dense over the [CLS] position).

    Example:
    >>> bert = Bert.from_preset("bert_tiny", vocabulary_size=8000)
    >>> out = bert({"token_ids": ids, "segment_ids": seg, "padding_mask": mask})
    """

    presets = BERT_PRESETS
    pretrained_task = "bert"

    def __init__(
        self,
        vocabulary_size,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        dropout=0.1,
        attention_dropout=None,
        max_sequence_length=512,
        num_segments=2,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        dtype=None,
        **kwargs,
    ):
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        embedding = TransformerEmbedding(
            vocabulary_size, hidden_dim, max_sequence_length, num_segments=num_segments,
            layer_norm=True, layer_norm_epsilon=layer_norm_epsilon, dropout=dropout,
            initializer_range=initializer_range, dtype=dtype, name="embeddings",
        )
        blocks = [
            TransformerEncoderBlock(
                num_heads, intermediate_dim, dropout=dropout, attention_dropout=attention_dropout,
                activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=init, dtype=dtype, name=f"encoder_layer_{i}",
            )
            for i in range(num_layers)
        ]
        pooler = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=init, dtype=dtype, name="pooler"
        )

        # Functional construction (as keras-hub): summary, saving and export work as they are.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        x = embedding(token_ids, segment_ids)
        for block in blocks:
            x = block(x, padding_mask=padding_mask)
        pooled = pooler(ops.take(x, 0, axis=1))
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )
        self.embeddings = embedding
        self.encoder_blocks = blocks
        self.pooler = pooler
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range

    @property
    def token_embedding(self):
        return self.embeddings.token_embedding

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            max_sequence_length=self.max_sequence_length,
            num_segments=self.num_segments,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range,
            dtype=keras.dtype_policies.serialize(self.dtype_policy),
        )
        return config
