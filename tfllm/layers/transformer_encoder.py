"""The Transformer encoder block: self-attention and feed-forward, each with residual + LayerNorm."""

import keras

from tfllm.errors import ConfigError
from tfllm.layers.attention import MultiHeadAttention
from tfllm.layers.attention import merge_masks
from tfllm.layers.attention import padding_to_attention_mask
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.residual import make_layer_norm
from tfllm.layers.residual import residual


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerEncoderBlock(keras.layers.Layer):
    """One encoder layer. Post-LN as in BERT by default; `normalize_first=True` gives pre-LN as in GPT-2.

    Args:
        num_heads: attention heads; hidden size must divide by it.
        intermediate_dim: feed-forward inner width.
        dropout: residual dropout rate.
        attention_dropout: dropout on attention probabilities (default: `dropout`).
        activation: "gelu", "gelu_approximate" or "relu".
        layer_norm_epsilon: LayerNorm epsilon (BERT 1e-12, GPT-2 1e-5).
        normalize_first: pre-LN instead of post-LN.

    Call args: `x` [B, T, D]; `padding_mask` [B, T] (True = token; taken
    from the Keras mask of `x` if not given); `attention_mask` [B, T, T] or
    broadcastable to [B, N, T, T], combined with the padding mask.

    Example:
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=64)
    >>> y = block(keras.ops.ones((2, 5, 32)), padding_mask=keras.ops.ones((2, 5), "bool"))
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ConfigError(
                f"hidden size {hidden_dim} must be divisible by num_heads={self.num_heads}"
            )
        dtype = self.dtype_policy
        self.self_attention = MultiHeadAttention(
            self.num_heads, hidden_dim // self.num_heads, dropout=self.attention_dropout,
            kernel_initializer=self.kernel_initializer, dtype=dtype, name="self_attention",
        )
        self.self_attention.build(input_shape)
        self.self_attention_layer_norm = make_layer_norm(
            self.layer_norm_epsilon, dtype, "self_attention_layer_norm"
        )
        self.self_attention_layer_norm.build(input_shape)
        self.feed_forward = FeedForward(
            self.intermediate_dim, self.activation, self.kernel_initializer, dtype=dtype,
            name="feed_forward",
        )
        self.feed_forward.build(input_shape)
        self.feed_forward_layer_norm = make_layer_norm(
            self.layer_norm_epsilon, dtype, "feed_forward_layer_norm"
        )
        self.feed_forward_layer_norm.build(input_shape)
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)
        self.built = True

    def call(self, x, padding_mask=None, attention_mask=None, training=None, mask=None):
        padding_mask = mask if padding_mask is None else padding_mask
        mask = merge_masks(
            None if padding_mask is None else padding_to_attention_mask(padding_mask),
            None if attention_mask is None else _broadcast_to_heads(attention_mask),
        )
        x, _ = residual(
            x,
            lambda h: self.self_attention(h, attention_mask=mask, training=training),
            self.self_attention_layer_norm, self.residual_dropout, self.normalize_first, training,
        )
        x, _ = residual(
            x, self.feed_forward, self.feed_forward_layer_norm, self.residual_dropout,
            self.normalize_first, training,
        )
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            normalize_first=self.normalize_first,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _broadcast_to_heads(attention_mask):
    """[B, T, S] -> [B, 1, T, S]; 4-D masks pass through."""
    return attention_mask[:, None] if len(attention_mask.shape) == 3 else attention_mask
