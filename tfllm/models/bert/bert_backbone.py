"""The BERT encoder: embeddings, a stack of post-LN encoder blocks, and the [CLS] pooler.

RoBERTa, DistilBERT and ELECTRA are this same encoder with a few options
(`position_offset`, `num_segments=0`, `embedding_dim`, `pooler_activation`),
so they are presets of `Bert` rather than classes of their own: the maths,
the task heads, the recipes and the exports are shared. keras-hub has one
backbone class per family (`RobertaBackbone`, `DistilBertBackbone`,
`ElectraBackbone`); tfllm does not use them because their weights would need
their own heads, PEFT targets and exports, for the same computation.
"""

import keras
from keras import ops

from tfllm.errors import ConfigError
from tfllm.layers import TransformerEmbedding
from tfllm.layers import TransformerEncoderBlock
from tfllm.models.bert.bert_presets import BERT_PRESETS
from tfllm.models.presets import PresetMixin
from tfllm.models.pretrained import PretrainedMixin


@keras.saving.register_keras_serializable(package="tfllm")
class Bert(PresetMixin, PretrainedMixin, keras.Model):
    """BERT backbone (Devlin et al., 2019).

    Inputs: a dict with `token_ids` (int32 [B, T]), `segment_ids` (int32
    [B, T]; unused when `num_segments=0`) and `padding_mask` (bool [B, T],
    True for real tokens).
    Outputs: a dict with `sequence_output` [B, T, D] and `pooled_output`
    [B, D] (a dense layer with `pooler_activation` over the first position).

    Family options (defaults are BERT's):
        position_offset: the first position's row in the position table
            (RoBERTa: `pad_token_id + 1` = 2); the table has
            `max_sequence_length` rows, offset included.
        num_segments: segment (token type) embeddings; 0 for none (DistilBERT).
        embedding_dim: embedding width when it differs from `hidden_dim`
            (ELECTRA): a dense `embeddings_project` maps it to `hidden_dim`.
        pooler_activation: the pooler's activation: "tanh" (BERT's pooler,
            RoBERTa's classification head), "relu" (DistilBERT's
            `pre_classifier`), "gelu" (ELECTRA's classification head).
            Families without a pretrained pooler use it as the first dense
            layer of their classification head, as their heads are.

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
        position_offset=0,
        embedding_dim=None,
        pooler_activation="tanh",
        dtype=None,
        **kwargs,
    ):
        if not 0 <= position_offset < max_sequence_length:
            raise ConfigError(f"position_offset={position_offset} must be in [0, max_sequence_length="
                             f"{max_sequence_length})")
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        embedding = TransformerEmbedding(
            vocabulary_size, embedding_dim or hidden_dim, max_sequence_length, num_segments=num_segments,
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
        project = None
        if embedding_dim and embedding_dim != hidden_dim:
            project = keras.layers.Dense(hidden_dim, kernel_initializer=init, dtype=dtype, name="embeddings_project")
        pooler = keras.layers.Dense(
            hidden_dim, activation=pooler_activation, kernel_initializer=init, dtype=dtype, name="pooler"
        )

        # Functional construction (as keras-hub): summary, saving and export work as they are.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        x = embedding(token_ids, segment_ids, start_index=position_offset)
        if project is not None:
            x = project(x)
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
        self.embeddings_project = project
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
        self.position_offset = position_offset
        self.embedding_dim = embedding_dim
        self.pooler_activation = pooler_activation

    @property
    def max_tokens(self):
        """The longest input: the position table's rows past `position_offset`."""
        return self.max_sequence_length - self.position_offset

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
            position_offset=self.position_offset,
            embedding_dim=self.embedding_dim,
            pooler_activation=self.pooler_activation,
            dtype=keras.dtype_policies.serialize(self.dtype_policy),
        )
        return config
