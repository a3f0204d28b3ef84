"""The trainable pieces of parameter-efficient fine-tuning: a LoRA update, a bottleneck adapter, a key/value prefix.

Each one plugs into a hook of `tfllm.layers.MultiHeadAttention` or
`FeedForward` (see `tfllm.peft.methods`, which attaches them).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfllm")
class LoraUpdate(keras.layers.Layer):
    """The low-rank update (alpha / rank) · dropout(x)·A·B of one projection (Hu et al., 2021).

    For a projection whose kernel is laid out as input axes then output axes
    (Dense [D, U]; query/key/value EinsumDense [D, N, H]; attention output
    [N, H, D]), A has shape `input axes + (rank,)` and B `(rank,) + output
    axes`, so A·B reshaped to [fan_in, fan_out] has rank `rank`, as in the
    paper. A starts He-uniform, B at zero (as Keras' `enable_lora`): the model
    starts unchanged.

    Args:
        kernel_shape: shape of the adapted kernel.
        num_input_axes: how many leading kernel axes the projection contracts
            with the input's last axes.
        rank: r.
        alpha: scale numerator; the update is scaled by alpha / rank
            (default alpha = rank, scale 1).
        dropout: dropout on the update's input (training only).

    Example:
    >>> update = LoraUpdate((16, 2, 8), num_input_axes=1, rank=4, alpha=8)
    >>> update.build()
    >>> update(keras.ops.ones((3, 5, 16))).shape  # added to the query projection's output
    (3, 5, 2, 8)
    """

    def __init__(self, kernel_shape, num_input_axes, rank, alpha=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        self.num_input_axes = num_input_axes
        self.rank = rank
        self.alpha = rank if alpha is None else alpha
        self.dropout = dropout
        self.scale = self.alpha / rank

    def build(self, input_shape=None):
        k = self.num_input_axes
        self.lora_a = self.add_weight(
            name="lora_a", shape=self.kernel_shape[:k] + (self.rank,), initializer="he_uniform"
        )
        self.lora_b = self.add_weight(
            name="lora_b", shape=(self.rank,) + self.kernel_shape[k:], initializer="zeros"
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def kernel_delta(self):
        """(alpha / rank)·A·B in the kernel's shape: what `merge_lora` adds to the kernel."""
        return self.scale * ops.tensordot(self.lora_a, self.lora_b, axes=1)

    def call(self, x, training=None):
        x = self.dropout_layer(x, training=training)
        low_rank = ops.tensordot(x, ops.cast(self.lora_a, x.dtype), axes=self.num_input_axes)
        return ops.tensordot(low_rank, ops.cast(self.lora_b, x.dtype), axes=1) * ops.cast(self.scale, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_shape=self.kernel_shape, num_input_axes=self.num_input_axes, rank=self.rank,
                      alpha=self.alpha, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="tfllm")
class BottleneckAdapter(keras.layers.Layer):
    """h + up(gelu(down(h))): a Houlsby et al. (2019) adapter, placed after a sublayer and before its residual.

    `up` starts at zero, so a new adapter is the identity and the model
    starts unchanged; `down` starts truncated-normal (stddev 0.02, BERT's
    initializer range).

    Args:
        bottleneck_dim: width of the bottleneck m; adds 2·D·m + D + m weights.
        activation: "gelu" or "relu".

    Example:
    >>> adapter = BottleneckAdapter(8)
    >>> adapter(keras.ops.ones((2, 5, 32))).shape
    (2, 5, 32)
    """

    def __init__(self, bottleneck_dim, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.bottleneck_dim = bottleneck_dim
        self.activation = activation

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        m = self.bottleneck_dim
        self.down_kernel = self.add_weight(
            name="down_kernel", shape=(hidden_dim, m),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.down_bias = self.add_weight(name="down_bias", shape=(m,), initializer="zeros")
        self.up_kernel = self.add_weight(name="up_kernel", shape=(m, hidden_dim), initializer="zeros")
        self.up_bias = self.add_weight(name="up_bias", shape=(hidden_dim,), initializer="zeros")
        self.built = True

    def call(self, x, training=None):
        h = ops.matmul(x, self.down_kernel) + self.down_bias
        h = keras.activations.gelu(h, approximate=False) if self.activation == "gelu" else ops.relu(h)
        return x + ops.matmul(h, self.up_kernel) + self.up_bias

    def get_config(self):
        config = super().get_config()
        config.update(bottleneck_dim=self.bottleneck_dim, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfllm")
class KeyValuePrefix(keras.layers.Layer):
    """`length` learned keys and values per head, prepended to an attention layer's own (Li & Liang, 2021).

    Every query can attend to the prefix: the attention mask gets `length`
    True columns in front. The prefix lives in the projected key/value space
    of each layer (no reparameterisation MLP), initialised normal with
    stddev 0.02.

    Call args: `key`, `value` [B, S, N, H]; `attention_mask` None or boolean
    broadcastable to [B, N, T, S]. Returns the three extended to S + length.

    Example:
    >>> prefix = KeyValuePrefix(4, num_heads=2, key_dim=8)
    >>> k, v, mask = prefix(keras.ops.ones((3, 5, 2, 8)), keras.ops.ones((3, 5, 2, 8)),
    ...                     keras.ops.ones((3, 1, 1, 5), "bool"))
    >>> k.shape, mask.shape
    ((3, 9, 2, 8), (3, 1, 1, 9))
    """

    def __init__(self, length, num_heads, key_dim, **kwargs):
        super().__init__(**kwargs)
        self.length = length
        self.num_heads = num_heads
        self.key_dim = key_dim

    def build(self, *args):
        shape = (self.length, self.num_heads, self.key_dim)
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.prefix_key = self.add_weight(name="prefix_key", shape=shape, initializer=init)
        self.prefix_value = self.add_weight(name="prefix_value", shape=shape, initializer=init)
        self.built = True

    def call(self, key, value, attention_mask=None):
        batch = ops.shape(key)[0]

        def prepend(prefix, x):
            prefix = ops.broadcast_to(ops.cast(prefix, x.dtype)[None], (batch,) + tuple(prefix.shape))
            return ops.concatenate([prefix, x], axis=1)

        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            visible = ops.repeat(ops.ones_like(attention_mask[..., :1]), self.length, axis=-1)
            attention_mask = ops.concatenate([visible, attention_mask], axis=-1)
        return prepend(self.prefix_key, key), prepend(self.prefix_value, value), attention_mask

    def get_config(self):
        config = super().get_config()
        config.update(length=self.length, num_heads=self.num_heads, key_dim=self.key_dim)
        return config
