"""Token + position (+ segment) embeddings: the input layer of BERT and GPT."""

import keras
from keras import ops
from keras_hub.layers import ReversibleEmbedding

from tfllm.errors import ConfigError
from tfllm.layers.position_embedding import LearnedPositionEmbedding
from tfllm.layers.position_embedding import SinusoidalPositionEmbedding


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerEmbedding(keras.layers.Layer):
    """Sum of token, position and (optionally) segment embeddings, then LayerNorm and dropout.

    BERT: `num_segments=2, layer_norm=True`. GPT-2: `num_segments=0,
    layer_norm=False`. The token embedding is a keras-hub
    `ReversibleEmbedding`, so a language-model head can reuse it as the tied
    output projection: `embedding.token_embedding(hidden, reverse=True)`.

    Args:
        vocabulary_size: number of token ids.
        hidden_dim: embedding width.
        max_sequence_length: number of learned positions (ignored by sinusoidal).
        num_segments: number of segment (token type) ids; 0 for none.
        position_embedding: "learned" or "sinusoidal".
        layer_norm: apply LayerNorm after the sum (BERT) or not (GPT-2).
        layer_norm_epsilon: LayerNorm epsilon.
        dropout: dropout rate on the output.
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_sequence_length,
        num_segments=0,
        position_embedding="learned",
        layer_norm=True,
        layer_norm_epsilon=1e-12,
        dropout=0.0,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_embedding not in ("learned", "sinusoidal"):
            raise ConfigError(
                f"position_embedding must be 'learned' or 'sinusoidal', got {position_embedding!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.position_embedding = position_embedding
        self.layer_norm = layer_norm
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.initializer_range = initializer_range

        def init():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init(),
            dtype=self.dtype_policy, name="token_embedding",
        )
        if position_embedding == "learned":
            self.position_layer = LearnedPositionEmbedding(
                max_sequence_length, initializer=init(), dtype=self.dtype_policy,
                name="position_embedding",
            )
        else:
            self.position_layer = SinusoidalPositionEmbedding(
                dtype=self.dtype_policy, name="position_embedding"
            )
        self.segment_embedding = None
        if num_segments:
            self.segment_embedding = keras.layers.Embedding(
                num_segments, hidden_dim, embeddings_initializer=init(),
                dtype=self.dtype_policy, name="segment_embedding",
            )
        self.norm = None
        if layer_norm:
            self.norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="embedding_layer_norm"
            )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        embedded_shape = tuple(token_ids_shape) + (self.hidden_dim,)
        self.position_layer.build(embedded_shape)
        if self.segment_embedding is not None:
            self.segment_embedding.build(token_ids_shape)
        if self.norm is not None:
            self.norm.build(embedded_shape)
        self.built = True

    def call(self, token_ids, segment_ids=None, start_index=0, training=None):
        x = self.token_embedding(token_ids)
        x = x + self.position_layer(x, start_index=start_index)
        if self.segment_embedding is not None:
            if segment_ids is None:
                segment_ids = ops.zeros_like(token_ids)
            x = x + self.segment_embedding(segment_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout_layer(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            max_sequence_length=self.max_sequence_length,
            num_segments=self.num_segments,
            position_embedding=self.position_embedding,
            layer_norm=self.layer_norm,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dropout=self.dropout,
            initializer_range=self.initializer_range,
        )
        return config
