"""Grouped-query self-attention with rotary positions: the attention of Llama, Mistral and Qwen2."""

import keras
from keras import ops

from tfllm.errors import ConfigError
from tfllm.layers.attention import MultiHeadAttention
from tfllm.layers.attention import grouped_query_attention
from tfllm.layers.attention import project
from tfllm.layers.einsum_dense import EinsumDense
from tfllm.layers.rotary_embedding import apply_rotary_embedding
from tfllm.layers.rotary_embedding import inverse_frequencies


@keras.saving.register_keras_serializable(package="tfllm")
class GroupedQueryAttention(MultiHeadAttention):
    """Self-attention with `num_key_value_heads` key/value heads shared by groups of query heads, and RoPE.

    A `MultiHeadAttention` (same projection names `query`, `key`, `value`,
    `attention_output`, same LoRA/adapter/prefix hooks, same cache
    protocol), so `tfllm.peft` and the decoding loop treat it like GPT's.
    Keys and values have `num_key_value_heads` heads: the cache stores only
    those, [B, max_length, num_key_value_heads, H], and each serves its
    group of query heads without being copied (`grouped_query_attention`).
    RoPE rotates queries and keys at their absolute positions
    (`cache_update_index` onwards) before the keys are cached. While
    decoding, the query, key and value projections run as one matrix
    product over their concatenated kernels (`project_query_key_value`).

    Why not keras-hub's `LlamaAttention`: its cache is one stacked
    [B, 2, ...] tensor (see `MultiHeadAttention` for why tfllm keeps a
    pair), it has no qkv-bias option (Qwen2), and no tfllm PEFT hooks.

    Args:
        num_heads: query heads.
        key_dim: head size.
        num_key_value_heads: key/value heads (divides num_heads); default num_heads.
        use_bias: bias on the query, key and value projections (Qwen2; Llama's `attention_bias`).
        output_bias: bias on the output projection (Llama's `attention_bias`).
        rope_theta, rope_scaling: RoPE settings (see `tfllm.layers.rotary_embedding`).

    Example:
    >>> attention = GroupedQueryAttention(num_heads=4, key_dim=8, num_key_value_heads=2)
    >>> out = attention(ops.ones((1, 5, 32)))         # [1, 5, 32]
    """

    def __init__(self, num_heads, key_dim, num_key_value_heads=None, dropout=0.0, use_bias=False,
                 output_bias=False, rope_theta=10000.0, rope_scaling=None, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(num_heads, key_dim, dropout=dropout, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, **kwargs)
        self.num_key_value_heads = num_key_value_heads or num_heads
        if num_heads % self.num_key_value_heads:
            raise ConfigError(f"num_key_value_heads={self.num_key_value_heads} must divide num_heads={num_heads}")
        self.output_bias = output_bias
        self.rope_theta = rope_theta
        self.rope_scaling = dict(rope_scaling) if rope_scaling else None
        self.inv_freq = inverse_frequencies(key_dim, rope_theta, self.rope_scaling)

    def build(self, query_shape, value_shape=None):
        hidden_dim = query_shape[-1]

        def projection(name, heads, equation="btd,dnh->btnh", bias=None, input_shape=query_shape,
                       output_shape=None):
            layer = EinsumDense(equation, output_shape=output_shape or (None, heads, self.key_dim),
                                bias_axes=bias, kernel_initializer=self._clone_initializer(),
                                dtype=self.dtype_policy, name=name)
            layer.build(input_shape)
            return layer

        qkv_bias = "nh" if self.use_bias else None
        self.query_dense = projection("query", self.num_heads, bias=qkv_bias)
        self.key_dense = projection("key", self.num_key_value_heads, bias=qkv_bias)
        self.value_dense = projection("value", self.num_key_value_heads, bias=qkv_bias)
        self.output_dense = projection(
            "attention_output", None, "btnh,nhd->btd", "d" if self.output_bias else None,
            (None, None, self.num_heads, self.key_dim), (None, hidden_dim))
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def project_query_key_value(self, x, fuse=False, training=None):
        """Queries [B, T, N, H], keys and values [B, T, K, H] of x; with `fuse`, one product over the joined kernels.

        One matrix product instead of three: a decoding step is a few
        matrix-vector products per layer, and XLA's CPU kernel reads one
        wider matrix faster than three narrow ones (blocks 4.9 -> 4.1 ms CPU
        per step at batch 1 in `decode-profile --architecture=llama`). The
        kernels are loop-invariant in the compiled decoding loop, so joining
        them is not repeated per step. Not fused when a projection has a
        `tfllm.peft` LoRA hook or is quantized (their own call paths).
        """
        denses = (self.query_dense, self.key_dense, self.value_dense)
        if not fuse or any(getattr(d, "lora_update", None) is not None or getattr(d, "quantization_mode", None)
                           for d in denses):
            return tuple(project(d, x, training) for d in denses)
        kernel = ops.concatenate([ops.reshape(d.kernel, (d.kernel.shape[0], -1)) for d in denses], axis=1)
        joined = ops.einsum("btd,de->bte", x, kernel)
        if self.use_bias:
            joined = joined + ops.concatenate([ops.reshape(d.bias, (-1,)) for d in denses], axis=0)
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        sizes = [self.num_heads * self.key_dim] + [self.num_key_value_heads * self.key_dim] * 2
        q, k, v = ops.split(joined, [sizes[0], sizes[0] + sizes[1]], axis=-1)
        heads = (self.num_heads, self.num_key_value_heads, self.num_key_value_heads)
        return tuple(ops.reshape(t, (batch, length, n, self.key_dim)) for t, n in zip((q, k, v), heads))

    def call(self, query, value=None, attention_mask=None, cache=None, cache_update_index=None, training=None):
        start = 0 if cache_update_index is None else cache_update_index
        q, k, v = self.project_query_key_value(query, fuse=cache is not None, training=training)
        q = apply_rotary_embedding(q, self.inv_freq, start)
        k = apply_rotary_embedding(k, self.inv_freq, start)
        if cache is not None:
            if cache_update_index is None:
                raise ValueError("GroupedQueryAttention is self-attention: a cache needs cache_update_index")
            k = ops.slice_update(cache[0], [0, cache_update_index, 0, 0], k)
            v = ops.slice_update(cache[1], [0, cache_update_index, 0, 0], v)
            cache = (k, v)
        if self.prefix is not None:  # Not stored in the cache: prepended at every step, one per key/value head.
            k, v, attention_mask = self.prefix(k, v, attention_mask)
        attended = grouped_query_attention(
            q, k, v, mask=attention_mask, dropout=self.attention_dropout, training=training)
        output = project(self.output_dense, attended, training)
        if self.adapter is not None:
            output = self.adapter(output, training=training)
        return output if cache is None else (output, cache)

    def get_config(self):
        config = super().get_config()
        config.update(num_key_value_heads=self.num_key_value_heads, output_bias=self.output_bias,
                      rope_theta=self.rope_theta, rope_scaling=self.rope_scaling)
        return config
