"""Root-mean-square layer normalization (Llama, Mistral, Qwen2)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfllm")
class RMSNorm(keras.layers.Layer):
    """x / sqrt(mean(x²) + epsilon) · scale, with no centring and no bias.

    Computed in float32 and cast back, as Hugging Face's `LlamaRMSNorm`
    does, so bfloat16 models normalize the same way. (Keras'
    `RMSNormalization` computes in the input dtype; keras-hub's
    `LlamaLayerNorm` matches this one but lives in keras-hub's private
    `src` tree.)

    Example:
    >>> RMSNorm(epsilon=1e-6)(ops.ones((1, 4, 16)))   # [1, 4, 16] of ones
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.built = True

    def call(self, x):
        x32 = ops.cast(x, "float32")
        x32 = x32 * ops.rsqrt(ops.mean(ops.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x32, self.compute_dtype) * ops.cast(self.scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
