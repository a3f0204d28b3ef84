"""Dynamic loss scaling for float16 training in the custom loop.

float16 gradients underflow to zero (below ~6e-8) or overflow to inf (above
65504). Keras' `LossScaleOptimizer` multiplies the loss by a large scale
before the backward pass, divides the gradients by it, and on a non-finite
gradient skips the update and halves the scale (doubling it again after 2000
good updates). bfloat16 has float32's range and needs none of this.

Keras decides "skip or apply" from the gradients it is given, which in our
loop are still per replica (the all-reduce happens inside the optimizer, so
clipping sees summed gradients); under strategies that use `merge_call`
(everything except XLA-compiled steps on GPUs) it takes replica 0's verdict
for all. `agree_on_overflow` makes every replica see the same verdict.
"""

import keras
import tensorflow as tf

# Below this the gradients overflow even unscaled: a real divergence, not fp16 range.
MIN_LOSS_SCALE = 1.0


def wrap_if_float16(optimizer, model):
    """The optimizer, in a `LossScaleOptimizer` if `model` computes in float16.

    As `Model.compile` does; call inside `strategy.scope()`.
    """
    if model.dtype_policy.compute_dtype != "float16" or isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def inner_optimizer(optimizer):
    """The optimizer that holds the slots: what checkpoints save as `optimizer`.

    Saving the inner one keeps the checkpoint layout the same with or without
    loss scaling, so a run can resume under another `--mixed_precision`.
    """
    return getattr(optimizer, "inner_optimizer", optimizer)


def loss_scale_variables(optimizer):
    """The loss scale and its good-step counter, to checkpoint; [] without scaling."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return [optimizer.dynamic_scale, optimizer.step_counter]
    return []


def all_finite(grads):
    """A scalar bool: no gradient holds a NaN or inf."""
    return tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
    )


def agree_on_overflow(grads):
    """In replica context: NaN gradients on every replica if any replica overflowed.

    One scalar all-reduce. Without it a replica whose gradients are finite
    would apply (and enter the optimizer's all-reduce) while another skips:
    a hang, or inf gradients applied on CPU/TPU where Keras only asks replica 0.
    """
    overflowed = 1.0 - tf.cast(all_finite(grads), tf.float32)
    overflowed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, overflowed
    )
    poison = tf.where(overflowed > 0, float("nan"), 0.0)
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in grads]
