"""One Llama decoder layer: pre-RMSNorm grouped-query self-attention and gated MLP, each with a residual."""

import keras
from keras import ops

from tfllm.layers import GatedFeedForward
from tfllm.layers import GroupedQueryAttention
from tfllm.layers import RMSNorm
from tfllm.layers import causal_attention_mask
from tfllm.layers import padding_to_attention_mask
from tfllm.layers.attention import merge_masks


@keras.saving.register_keras_serializable(package="tfllm")
class LlamaDecoderBlock(keras.layers.Layer):
    """x + attention(norm(x)), then + mlp(norm(·)): the block of Llama, Mistral and Qwen2.

    Why not `TransformerDecoderBlock`: its sublayers are LayerNorm, a
    plain MLP and full-head attention, and it has no sliding window; the
    four differences would each be an option there used only here.

    Call args:
        x: [B, T, D].
        padding_mask: [B, K] over the keys (K = T without cache, the cache length with one).
        cache: a (keys, values) pair, each [B, K, num_key_value_heads, H]; with it
            the block writes the new keys/values at `cache_update_index` and
            returns `(output, updated_cache)`.
    """

    def __init__(self, num_heads, num_key_value_heads, head_dim, intermediate_dim, rms_norm_epsilon=1e-6,
                 rope_theta=10000.0, rope_scaling=None, sliding_window=None, qkv_bias=False, output_bias=False,
                 dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.rms_norm_epsilon = rms_norm_epsilon
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.sliding_window = sliding_window
        self.qkv_bias = qkv_bias
        self.output_bias = output_bias
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        dtype = self.dtype_policy
        self.attention_norm = RMSNorm(rms_norm_epsilon, dtype=dtype, name="self_attention_layer_norm")
        self.self_attention = GroupedQueryAttention(
            num_heads, head_dim, num_key_value_heads, dropout=dropout, use_bias=qkv_bias, output_bias=output_bias,
            rope_theta=rope_theta, rope_scaling=rope_scaling, kernel_initializer=self.kernel_initializer,
            dtype=dtype, name="self_attention")
        self.feed_forward_norm = RMSNorm(rms_norm_epsilon, dtype=dtype, name="feed_forward_layer_norm")
        self.feed_forward = GatedFeedForward(intermediate_dim, "silu", self.kernel_initializer, dtype=dtype,
                                             name="feed_forward")
        self.residual_dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def build(self, input_shape):
        for layer in (self.attention_norm, self.self_attention, self.feed_forward_norm, self.feed_forward):
            layer.build(input_shape)
        self.built = True

    def call(self, x, padding_mask=None, cache=None, cache_update_index=None, training=None):
        query_length = ops.shape(x)[1]
        key_length = query_length if cache is None else ops.shape(cache[0])[1]
        offset = 0 if cache is None else cache_update_index
        mask = merge_masks(
            causal_attention_mask(query_length, key_length, offset, self.sliding_window),
            None if padding_mask is None else padding_to_attention_mask(padding_mask))
        attended = self.self_attention(self.attention_norm(x), attention_mask=mask, cache=cache,
                                       cache_update_index=cache_update_index, training=training)
        if cache is not None:
            attended, cache = attended
        x = x + self.residual_dropout(attended, training=training)
        x = x + self.residual_dropout(self.feed_forward(self.feed_forward_norm(x), training=training),
                                      training=training)
        return x if cache is None else (x, cache)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim,
            intermediate_dim=self.intermediate_dim, rms_norm_epsilon=self.rms_norm_epsilon,
            rope_theta=self.rope_theta, rope_scaling=self.rope_scaling, sliding_window=self.sliding_window,
            qkv_bias=self.qkv_bias, output_bias=self.output_bias, dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
