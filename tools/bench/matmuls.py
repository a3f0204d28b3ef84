"""The matrix products of one Transformer training step, timed alone: how much of a step is matmul.

`train-bert` / `train-gpt` time these next to the real step (alternately, in
the same run). If the matmuls alone run near the measured peak and take
only part of the step, the rest of the step (softmax and masking, LayerNorm,
GELU, dropout, the optimizer, embedding gradients, input) is what limits
it, not the matmul kernels.
"""

import tensorflow as tf


def block_weight_shapes(layers, width):
    """[k, n] of every weight matrix of `layers` Transformer blocks: q/k/v, attention output, two FFN layers."""
    return [(width, 3 * width), (width, width), (width, 4 * width), (4 * width, width)] * layers


def step_matmul_shapes(batch, length, layers, width, heads, output_width=0):
    """`(count, m, k, n)` for every [m, k] @ [k, n] product of one forward + backward pass.

    Per layer: the q/k/v, output and two feed-forward projections over all
    tokens, and per (example, head) attention's scores [T, hd] @ [hd, T] and
    mixing [T, T] @ [T, hd]; `output_width` adds an output projection (a tied
    LM head). Backward: every forward product [m, k] @ [k, n] has two, the
    input gradient [m, n] @ [n, k] and the weight gradient [k, m] @ [m, n].
    """
    tokens, head_dim = batch * length, width // heads
    dense = [(tokens, k, n) for k, n in block_weight_shapes(layers, width)]
    if output_width:
        dense.append((tokens, width, output_width))
    attention = [(batch * heads * layers, length, head_dim, length), (batch * heads * layers, length, length, head_dim)]
    forward = [(1, m, k, n) for m, k, n in dense] + attention
    return [s for c, m, k, n in forward for s in ((c, m, k, n), (c, m, n, k), (c, k, m, n))]


class MatmulsAlone:
    """Runs every product of `shapes` in one `tf.function`; `flops` per call.

    Operands are variables (one per distinct shape), read afresh for every
    product: with plain tensors, grappler would fold or merge the repeated
    identical products (the same shapes recur in every layer) and the
    matmuls would look faster than they are.
    """

    def __init__(self, shapes, seed=0):
        self.flops = sum(2 * c * m * k * n for c, m, k, n in shapes)
        operands = {}
        for c, m, k, n in shapes:
            for shape in ((c, m, k), (c, k, n)):
                if shape not in operands:
                    dims = shape if c > 1 else shape[1:]
                    operands[shape] = tf.Variable(tf.random.stateless_normal(dims, seed=(seed, len(operands))))

        @tf.function
        def run():
            # One scalar per product, so none is pruned; the sums read each output once.
            return tf.add_n([tf.reduce_sum(tf.matmul(operands[(c, m, k)].read_value(),
                                                     operands[(c, k, n)].read_value()))
                             for c, m, k, n in shapes])

        self._run = run

    def __call__(self):
        return self._run().numpy()
