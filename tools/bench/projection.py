"""`benchmark.py projection`: one attention projection, Keras' `EinsumDense` vs tfllm's, forward + backward.

The input has fully known shapes (fixed-length training batches), the case
where Keras 3's TensorFlow backend rewrites `btd,dnh->btnh` into a broadcast
batch matmul; tfllm's `EinsumDense` runs `tf.einsum` (one GEMM). Both layers
hold the same kernel and get the same input; outputs are checked equal.
"""

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from tfllm.layers import EinsumDense
from tools.bench.timing import print_table
from tools.bench.timing import spread
from tools.bench.timing import time_alternately
from tools.bench.train import bert_size

EQUATIONS = {"query/key/value": "btd,dnh->btnh", "attention output": "btnh,nhd->btd"}


def _layers_and_input(equation, batch, length, width, heads):
    head_dim = width // heads
    if equation.startswith("btd"):
        in_shape, out_shape, bias = (batch, length, width), (None, heads, head_dim), "nh"
    else:
        in_shape, out_shape, bias = (batch, length, heads, head_dim), (None, width), "d"
    theirs = keras.layers.EinsumDense(equation, output_shape=out_shape, bias_axes=bias)
    ours = EinsumDense(equation, output_shape=out_shape, bias_axes=bias)
    theirs.build(in_shape)
    ours.build(in_shape)
    ours.set_weights(theirs.get_weights())
    x = tf.random.stateless_normal(in_shape, seed=(0, 1))
    return {"keras EinsumDense": theirs, "tfllm EinsumDense": ours}, x


def _forward_backward(layer, x):
    @tf.function(input_signature=[tf.TensorSpec(x.shape, x.dtype)])
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    return step


def run(flags):
    batch, length = flags.bert_batch_size, flags.bert_sequence_length
    rows = []
    for size in flags.bert_sizes:
        _, width, heads = bert_size(size)
        for role, equation in EQUATIONS.items():
            layers, x = _layers_and_input(equation, batch, length, width, heads)
            outputs = [layer(x).numpy() for layer in layers.values()]
            np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
            steps = {name: _forward_backward(layer, x) for name, layer in layers.items()}
            variants = {name: (lambda step=step, x=x: [g.numpy() for g in step(x)]) for name, step in steps.items()}
            for fn in variants.values():
                fn()
            times = time_alternately(variants, flags.repeats * 4)
            reference = spread(times["keras EinsumDense"])[0]
            flops = 3 * 2 * batch * length * width * width  # forward + two backward GEMMs
            for name, seconds in times.items():
                median, low, high = spread(seconds)
                rows.append([size, role, equation, name, f"{median * 1e3:.1f}", f"{low * 1e3:.1f}-{high * 1e3:.1f}",
                             f"{flops / median / 1e9:.0f}", f"{reference / median:.2f}"])
    print(f"Attention projections, forward + backward, input batch {batch} x {length} (static shapes)\n")
    print_table(["size", "projection", "equation", "layer", "median ms", "min-max ms", "GFLOP/s",
                 "speed vs Keras"], rows)
