"""Scaled dot-product attention, attention masks, and multi-head attention with a key/value cache."""

import math

import keras
from keras import ops

from tfllm.layers.einsum_dense import EinsumDense


def padding_to_attention_mask(padding_mask):
    """[B, S] (True = real token) -> [B, 1, 1, S] boolean mask for every query and head."""
    return ops.cast(padding_mask, "bool")[:, None, None, :]


def causal_attention_mask(query_length, key_length, offset=0, sliding_window=None):
    """[1, 1, T, S] mask where query i (at absolute position i + offset) sees keys j <= i + offset.

    With `sliding_window` W only the last W of them: i + offset - W < j (Mistral's window).
    """
    query_positions = ops.arange(query_length)[:, None] + offset
    key_positions = ops.arange(key_length)[None, :]
    mask = key_positions <= query_positions
    if sliding_window is not None:
        mask = ops.logical_and(mask, key_positions > query_positions - sliding_window)
    return mask[None, None, :, :]


def merge_masks(*masks):
    """Logical AND of the masks that are not None (None if all are None)."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def scaled_dot_product_attention(query, key, value, mask=None, dropout=None, training=None):
    """softmax(q·kᵀ/√d + mask)·v over heads.

    Shapes: query [B, T, N, H], key and value [B, S, N, H], mask boolean and
    broadcastable to [B, N, T, S] (True = attend). `dropout` is an optional
    Keras Dropout layer applied to the attention probabilities.

    Without active attention dropout this is `keras.ops.dot_product_attention`.
    That op has no dropout argument, so training with attention dropout (BERT
    uses 0.1) takes the explicit path below, which computes the same thing.
    """
    if dropout is None or dropout.rate == 0 or not training:
        return ops.dot_product_attention(query, key, value, mask=mask)
    scores = ops.einsum("btnh,bsnh->bnts", query, key)
    probs = _attention_probabilities(scores, query.shape[-1], mask, value.dtype, dropout, training)
    return ops.einsum("bnts,bsnh->btnh", probs, value)


def _attention_probabilities(scores, head_dim, mask, dtype, dropout, training):
    """softmax(scores/√head_dim) over the keys (the last axis), in float32 under mixed precision, masked
    positions left out, cast to `dtype`, with attention dropout when training."""
    logits = ops.cast(scores * ops.cast(1.0 / math.sqrt(head_dim), scores.dtype), "float32")
    if mask is not None:
        logits = ops.where(mask, logits, -0.7 * 3.38953e38)
    probs = ops.cast(ops.softmax(logits, axis=-1), dtype)
    if dropout is not None and dropout.rate > 0 and training:
        probs = dropout(probs, training=training)
    return probs


def grouped_query_attention(query, key, value, mask=None, dropout=None, training=None):
    """`scaled_dot_product_attention` where key/value have K heads, each shared by N / K query heads.

    Shapes: query [B, T, N, H], key and value [B, S, K, H] (K divides N),
    mask boolean [B or 1, 1 or N, T, S]. The queries are reshaped to
    [B, T, K, N/K, H] and contracted with the K key/value heads as they are.
    Why not `ops.repeat` the keys and values to N heads (as keras-hub's
    `LlamaAttention` does): while decoding that writes N/K copies of the
    whole key/value cache of every layer at every step (the blocks took 8.7
    ms CPU per step at batch 8 with the copies, 6.8 without; `decode-profile`).
    """
    num_heads, num_key_value_heads, head_dim = query.shape[2], key.shape[2], query.shape[3]
    groups = num_heads // num_key_value_heads
    if groups == 1:
        return scaled_dot_product_attention(query, key, value, mask=mask, dropout=dropout, training=training)
    batch, length = ops.shape(query)[0], ops.shape(query)[1]
    grouped = ops.reshape(query, (batch, length, num_key_value_heads, groups, head_dim))
    scores = ops.einsum("btkgh,bskh->bkgts", grouped, key)
    if mask is not None:
        mask = ops.cast(mask, "bool")
        if mask.shape[1] == 1:
            mask = mask[:, :, None]  # [B, 1, 1, T, S]
        else:
            mask = ops.reshape(mask, (ops.shape(mask)[0], num_key_value_heads, groups, ops.shape(mask)[2],
                                      ops.shape(mask)[3]))
    probs = _attention_probabilities(scores, head_dim, mask, value.dtype, dropout, training)
    attended = ops.einsum("bkgts,bskh->btkgh", probs, value)
    return ops.reshape(attended, (batch, length, num_heads, head_dim))


def zero_key_value_cache(num_layers, batch_size, max_length, num_heads, head_dim, dtype):
    """An empty decoding cache in `MultiHeadAttention`'s layout.

    Per layer a (keys, values) pair of zeros, each [batch_size, max_length,
    num_heads, head_dim], so every buffer can be updated in place.
    """
    shape = (batch_size, max_length, num_heads, head_dim)
    return tuple((ops.zeros(shape, dtype), ops.zeros(shape, dtype)) for _ in range(num_layers))


def project(dense, x, training=None):
    """`dense(x)`, plus the LoRA update `tfllm.peft` may attach as `dense.lora_update` (None by default).

    Keras' own LoRA (`dense.enable_lora`) needs no hook: it lives in the
    layer's `kernel`. This hook carries the cases Keras' LoRA does not cover
    (see `tfllm.peft.methods.add_lora`).
    """
    output = dense(x)
    update = getattr(dense, "lora_update", None)
    return output if update is None else output + update(x, training=training)


@keras.saving.register_keras_serializable(package="tfllm")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with optional key/value cache for incremental decoding.

    Projections are `EinsumDense` layers (tfllm's: see `einsum_dense.py` for
    why) named `query`, `key`, `value` and `attention_output`, one weight per
    published checkpoint tensor, so the checkpoint converters map names one
    to one.

    Parameter-efficient fine-tuning hooks (`tfllm.peft`; None by default, so
    plain models and their checkpoints are unchanged): `prefix` (learned
    keys/values prepended to every sequence, the mask extended to see them),
    `adapter` (applied to the output), and a LoRA update on any projection
    (see `project`).

    Cache layout: a pair `(keys, values)`, each [B, max_length, N, H]. With
    `cache_update_index`, the new keys/values of `value` are written at that
    position (self-attention while decoding); without it the cache is used
    as it is (cross-attention keys/values precomputed once per source).
    keras-hub's `CachedMultiHeadAttention` stacks keys and values into one
    [B, 2, ...] tensor instead; every decoding step then slices both out and
    stacks them back, copying the whole cache, where a pair lets XLA update
    each buffer in place (`benchmark.py decode-profile` measures the cost).

    Example:
    >>> mha = MultiHeadAttention(num_heads=2, key_dim=8)
    >>> out = mha(ops.ones((1, 4, 16)))          # self-attention, [1, 4, 16]
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self.prefix = None
        self.adapter = None

    def build(self, query_shape, value_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        hidden_dim = query_shape[-1]
        heads = (None, self.num_heads, self.key_dim)
        bias = "nh" if self.use_bias else None

        def projection(name, input_shape):
            layer = EinsumDense(
                "btd,dnh->btnh",
                output_shape=heads,
                bias_axes=bias,
                kernel_initializer=self._clone_initializer(),
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build(input_shape)
            return layer

        self.query_dense = projection("query", query_shape)
        self.key_dense = projection("key", value_shape)
        self.value_dense = projection("value", value_shape)
        self.output_dense = EinsumDense(
            "btnh,nhd->btd",
            output_shape=(None, hidden_dim),
            bias_axes="d" if self.use_bias else None,
            kernel_initializer=self._clone_initializer(),
            dtype=self.dtype_policy,
            name="attention_output",
        )
        self.output_dense.build((None, None, self.num_heads, self.key_dim))
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def _clone_initializer(self):
        return self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config())

    def compute_key_value(self, value):
        """Projected keys and values as a cache pair, each [B, S, N, H] (for cross-attention)."""
        return project(self.key_dense, value), project(self.value_dense, value)

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        value = query if value is None else value
        q = project(self.query_dense, query, training)
        if cache is None:
            k, v = project(self.key_dense, value, training), project(self.value_dense, value, training)
        elif cache_update_index is None:
            k, v = cache
        else:
            start = [0, cache_update_index, 0, 0]
            k = ops.slice_update(cache[0], start, project(self.key_dense, value, training))
            v = ops.slice_update(cache[1], start, project(self.value_dense, value, training))
            cache = (k, v)
        if self.prefix is not None:  # Not stored in the cache: prepended at every step.
            k, v, attention_mask = self.prefix(k, v, attention_mask)
        attended = scaled_dot_product_attention(
            q, k, v, mask=attention_mask, dropout=self.attention_dropout, training=training
        )
        output = project(self.output_dense, attended, training)
        if self.adapter is not None:
            output = self.adapter(output, training=training)
        return output if cache is None else (output, cache)

    def compute_output_shape(self, query_shape, value_shape=None):
        return query_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
