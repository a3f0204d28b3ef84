"""The Transformer decoder block: causal self-attention, optional cross-attention, feed-forward."""

import keras
from keras import ops

from tfllm.errors import ConfigError
from tfllm.layers.attention import MultiHeadAttention
from tfllm.layers.attention import causal_attention_mask
from tfllm.layers.attention import merge_masks
from tfllm.layers.attention import padding_to_attention_mask
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.residual import make_layer_norm
from tfllm.layers.residual import residual


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerDecoderBlock(keras.layers.Layer):
    """One decoder layer: causal self-attention, cross-attention over an encoder output, feed-forward.

    Built without an `encoder_sequence` it has no cross-attention and is a
    GPT block. Same arguments as `TransformerEncoderBlock`.

    Call args:
        decoder_sequence: [B, T, D].
        encoder_sequence: [B, S, D] or None.
        decoder_padding_mask: [B, K] over the self-attention keys (K = T
            without cache, the cache length with one).
        encoder_padding_mask: [B, S].
        self_attention_cache: a (keys, values) pair, each [B, K, N, H]; with
            it the block writes the new keys/values at
            `self_attention_cache_update_index` and returns
            `(output, updated_cache)`.
        cross_attention_cache: a (keys, values) pair, each [B, S, N, H], from
            `compute_cross_attention_cache`, used instead of `encoder_sequence`.
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

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        if hidden_dim % self.num_heads:
            raise ConfigError(
                f"hidden size {hidden_dim} must be divisible by num_heads={self.num_heads}"
            )
        dtype = self.dtype_policy
        key_dim = hidden_dim // self.num_heads

        def attention(name, value_shape):
            layer = MultiHeadAttention(
                self.num_heads, key_dim, dropout=self.attention_dropout,
                kernel_initializer=self.kernel_initializer, dtype=dtype, name=name,
            )
            layer.build(decoder_sequence_shape, value_shape)
            norm = make_layer_norm(self.layer_norm_epsilon, dtype, f"{name}_layer_norm")
            norm.build(decoder_sequence_shape)
            return layer, norm

        self.self_attention, self.self_attention_layer_norm = attention(
            "self_attention", decoder_sequence_shape
        )
        self.cross_attention = self.cross_attention_layer_norm = None
        if encoder_sequence_shape is not None:
            self.cross_attention, self.cross_attention_layer_norm = attention(
                "cross_attention", encoder_sequence_shape
            )
        self.feed_forward = FeedForward(
            self.intermediate_dim, self.activation, self.kernel_initializer, dtype=dtype,
            name="feed_forward",
        )
        self.feed_forward.build(decoder_sequence_shape)
        self.feed_forward_layer_norm = make_layer_norm(
            self.layer_norm_epsilon, dtype, "feed_forward_layer_norm"
        )
        self.feed_forward_layer_norm.build(decoder_sequence_shape)
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)
        self.built = True

    def compute_cross_attention_cache(self, encoder_sequence):
        """Cross-attention keys/values for a source, computed once and reused at every decoding step."""
        return self.cross_attention.compute_key_value(encoder_sequence)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        training=None,
        mask=None,
    ):
        x = decoder_sequence
        decoder_padding_mask = mask if decoder_padding_mask is None else decoder_padding_mask
        query_length = ops.shape(x)[1]
        if self_attention_cache is None:
            key_length, offset = query_length, 0
        else:
            key_length = ops.shape(self_attention_cache[0])[1]
            offset = self_attention_cache_update_index
        self_mask = merge_masks(
            causal_attention_mask(query_length, key_length, offset),
            None if decoder_padding_mask is None else padding_to_attention_mask(decoder_padding_mask),
        )
        x, self_attention_cache = residual(
            x,
            lambda h: self.self_attention(
                h, attention_mask=self_mask, cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index, training=training,
            ),
            self.self_attention_layer_norm, self.residual_dropout, self.normalize_first, training,
        )
        if self.cross_attention is not None:
            if encoder_sequence is None and cross_attention_cache is None:
                raise ValueError(
                    "This decoder block was built with cross-attention: pass "
                    "`encoder_sequence` or `cross_attention_cache`."
                )
            cross_mask = (
                None if encoder_padding_mask is None
                else padding_to_attention_mask(encoder_padding_mask)
            )
            x, _ = residual(
                x,
                lambda h: self.cross_attention(
                    h, value=encoder_sequence, attention_mask=cross_mask,
                    cache=cross_attention_cache, training=training,
                ),
                self.cross_attention_layer_norm, self.residual_dropout, self.normalize_first,
                training,
            )
        x, _ = residual(
            x, self.feed_forward, self.feed_forward_layer_norm, self.residual_dropout,
            self.normalize_first, training,
        )
        return x if self_attention_cache is None else (x, self_attention_cache)

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return decoder_sequence_shape

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
