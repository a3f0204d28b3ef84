"""`EinsumDense` whose float path is a single `tf.einsum`: a workaround for a slow Keras path."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tfllm")
class EinsumDense(keras.layers.EinsumDense):
    """`keras.layers.EinsumDense`, contracting with `tf.einsum`.

    Why not Keras' own `call`: when every input dimension is known, Keras
    3.15's TensorFlow backend rewrites `btd,dnh->btnh` and `btnh,nhd->btd`
    into `tf.matmul` of the rank-3 input with the reshaped kernel, which
    TensorFlow runs as a broadcast batch matmul, one small GEMM per example:
    forward + backward of a [128, 32, 256] attention projection took 106 ms
    that way against 21 ms with `tf.einsum` (one large GEMM) on this 2-core
    CPU. Training data padded to a fixed length always takes that slow path.
    `tools/benchmark.py projection` measures it.

    Everything else is Keras' layer: weights and their names, LoRA
    (`enable_lora`: `self.kernel` then includes the low-rank update),
    quantization (`quantized_call` replaces `call`), serialization.
    """

    def call(self, inputs, training=None):
        x = tf.einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x
