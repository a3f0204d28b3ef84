"""The position-wise feed-forward block of a Transformer layer: plain (BERT, GPT) and gated (Llama)."""

import keras

from tfllm.errors import ConfigError
from tfllm.layers.attention import project

ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),  # BERT: exact erf GELU
    "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),  # GPT-2: tanh GELU
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,  # Llama's SwiGLU gate
}


def get_activation(name):
    """The activation function for a config name, with a clear error for unknown names."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


@keras.saving.register_keras_serializable(package="tfllm")
class FeedForward(keras.layers.Layer):
    """Dense(intermediate_dim, activation) -> Dense(hidden_dim): the Transformer MLP.

    Sub-layers are named `intermediate` and `output` after BERT's checkpoint
    names. Residual dropout belongs to the enclosing block.
    """

    def __init__(self, intermediate_dim, activation="gelu", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(activation)
        self.adapter = None

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        init = self.kernel_initializer
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            kernel_initializer=init.__class__.from_config(init.get_config()),
            dtype=self.dtype_policy,
            name="intermediate",
        )
        self.intermediate_dense.build(input_shape)
        self.output_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=init.__class__.from_config(init.get_config()),
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.built = True

    def call(self, x, training=None):
        hidden = self._activation_fn(project(self.intermediate_dense, x, training))
        output = project(self.output_dense, hidden, training)
        return output if self.adapter is None else self.adapter(output, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="tfllm")
class GatedFeedForward(FeedForward):
    """output(activation(gate(x)) * intermediate(x)): the gated MLP of Llama, Mistral and Qwen2 (SwiGLU with silu).

    A `FeedForward` whose `intermediate` is Hugging Face's `up_proj` and
    `output` its `down_proj`, plus a `gate` projection (`gate_proj`); none
    has a bias. Being a `FeedForward`, it takes `tfllm.peft`'s adapters and
    LoRA ("gate" is a LoRA target too).
    """

    def __init__(self, intermediate_dim, activation="silu", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(intermediate_dim, activation, kernel_initializer, **kwargs)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        init = self.kernel_initializer

        def dense(units, name, in_dim):
            layer = keras.layers.Dense(units, use_bias=False, dtype=self.dtype_policy, name=name,
                                       kernel_initializer=init.__class__.from_config(init.get_config()))
            layer.build(tuple(input_shape[:-1]) + (in_dim,))
            return layer

        self.gate_dense = dense(self.intermediate_dim, "gate", hidden_dim)
        self.intermediate_dense = dense(self.intermediate_dim, "intermediate", hidden_dim)
        self.output_dense = dense(hidden_dim, "output", self.intermediate_dim)
        self.built = True

    def call(self, x, training=None):
        gate = self._activation_fn(project(self.gate_dense, x, training))
        output = project(self.output_dense, gate * project(self.intermediate_dense, x, training), training)
        return output if self.adapter is None else self.adapter(output, training=training)
