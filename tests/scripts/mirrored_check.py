"""MirroredStrategy over 2 logical CPUs vs one device (fp32 and fp16); prints diffs as JSON.

Run by tests/test_training.py in a subprocess, because the CPU must be split
into logical devices before TensorFlow initialises.
"""

import json
import logging
import os
import sys
import tempfile

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import split_cpu_into_logical_devices

sys.path.insert(0, os.path.dirname(__file__))
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the checkout
import tiny_training as tt

from tests import numpy_reference as ref
from tfllm.training import tagging_losses

split_cpu_into_logical_devices(2)
STEPS = 4


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run(strategy, model_dir, global_batch_size, max_steps=STEPS, **kwargs):
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=STEPS, warmup_steps=1)
    trainer = Trainer(
        model, optimizer, tt.loss_fn, global_batch_size, model_dir, strategy,
        metric_fns={"accuracy": tt.accuracy_fn}, log_every=STEPS, **kwargs,
    )
    results = trainer.train(tt.train_dataset_fn(global_batch_size), max_steps)
    return trainer, results


def run_fp16(strategy, model_dir, dataset_fn=None, loss_fn=tt.loss_fn):
    """fp16 with loss scale 2**10 (no natural overflow in this model)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    with strategy.scope():
        model = tt.build_model()
        optimizer = keras.optimizers.LossScaleOptimizer(
            create_optimizer(1e-2, total_steps=STEPS, warmup_steps=1), initial_scale=2**10)
    keras.mixed_precision.set_global_policy("float32")
    trainer = Trainer(model, optimizer, loss_fn, 8, model_dir, strategy, log_every=STEPS)
    trainer.train(dataset_fn or tt.train_dataset_fn(8), STEPS)
    return trainer


def overflow_on_one_replica(strategy, model_dir, half):
    """Step 2's loss x 1e4 on one half of the global batch of 8: one replica overflows.

    Unshuffled, so replica r of step s gets examples 8(s-1)+4r .. +3.
    """
    features, labels = tt.data()
    scale = np.ones(len(labels), "float32")
    scale[8 + 4 * half: 12 + 4 * half] = 1e4

    def dataset_fn(context):
        ds = tf.data.Dataset.from_tensor_slices((features, (labels, scale)))
        return ds.repeat().batch(context.get_per_replica_batch_size(8), drop_remainder=True)

    def loss_fn(labels_and_scale, logits):
        labels, scale = labels_and_scale
        return tf.cast(tt.loss_fn(labels, logits), tf.float32) * scale

    trainer = run_fp16(strategy, model_dir, dataset_fn, loss_fn)
    replicas_equal = all(
        np.array_equal(*[np.asarray(c) for c in v.value.values]) for v in trainer.model.weights)
    return {
        "skipped": STEPS - int(trainer.optimizer.iterations.numpy()),
        "loss_scale": float(trainer.optimizer.dynamic_scale.numpy()),
        "weights_finite": all(np.isfinite(w).all() for w in trainer.model.get_weights()),
        "replicas_equal": replicas_equal,
    }


def masked_token_loss_over_two_replicas(strategy):
    """The Trainer's loss of a batch of 4 sentences split 2 + 2 over the replicas, with 9 and 3 labelled
    tokens, and numpy's mean over all 12 (a mean of the two replicas' token means would be far off)."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, (4, 6)).astype(np.int32)
    weights = np.zeros((4, 6), np.float32)
    weights[0, :5] = weights[1, :4] = weights[2, :1] = weights[3, :2] = 1
    logits = rng.normal(size=(4, 6, 5)).astype(np.float32)

    def replica_values(ctx):
        i = ctx.replica_id_in_sync_group * 2
        return {"labels": labels[i:i + 2], "label_weights": weights[i:i + 2]}, logits[i:i + 2]

    @tf.function
    def step(y, x):
        def replica(y, x):  # what the Trainer does with the per-example loss
            return tf.nn.compute_average_loss(tagging_losses.masked_token_loss(y, x), global_batch_size=4)
        return strategy.reduce("SUM", strategy.run(replica, args=(y, x)), axis=None)

    loss = float(step(*strategy.experimental_distribute_values_from_function(replica_values)))
    return loss, float((ref.cross_entropy(logits, labels) * weights).sum() / weights.sum())


def weight_diff(a, b):
    return max(float(np.max(np.abs(x - y)))
               for x, y in zip(a.model.get_weights(), b.model.get_weights()))


def main():
    absl_logging.set_verbosity("info")
    capture = Capture()
    logging.getLogger("absl").addHandler(capture)
    tmp = tempfile.mkdtemp()
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2

    one, one_results = run(one_device, f"{tmp}/one", 8)
    mirror, mirror_results = run(mirrored, f"{tmp}/mirror", 8)
    accum, _ = run(mirrored, f"{tmp}/accum", 4, grad_accum_steps=2)
    run(mirrored, f"{tmp}/resume", 8, max_steps=2)
    resumed, _ = run(mirrored, f"{tmp}/resume", 8)
    run(one_device, f"{tmp}/switch", 8, max_steps=2)  # then resumed under another strategy
    switched, _ = run(mirrored, f"{tmp}/switch", 8)
    evaluation = mirror.evaluate(tt.eval_dataset_fn(8, num_examples=11))
    reference = tt.numpy_eval(mirror.model, num_examples=11)
    one_fp16 = run_fp16(one_device, f"{tmp}/one_fp16")
    mirror_fp16 = run_fp16(mirrored, f"{tmp}/mirror_fp16")
    overflows = [overflow_on_one_replica(mirrored, f"{tmp}/overflow{half}", half) for half in (0, 1)]
    token_loss, numpy_token_loss = masked_token_loss_over_two_replicas(mirrored)

    print(json.dumps({
        "mirrored_vs_one_device_weights": weight_diff(one, mirror),
        "mirrored_vs_one_device_loss": abs(
            one_results["train"]["loss"] - mirror_results["train"]["loss"]),
        "mirrored_accum_vs_one_device_big_batch_weights": weight_diff(one, accum),
        "mirrored_resume_vs_straight_weights": weight_diff(mirror, resumed),
        "one_device_then_mirrored_vs_straight_weights": weight_diff(mirror, switched),
        "mirrored_eval_vs_numpy_loss": abs(evaluation["loss"] - reference["loss"]),
        "mirrored_eval_vs_numpy_accuracy": abs(
            evaluation["accuracy"] - reference["accuracy"]),
        "mirrored_fp16_vs_one_device_fp16_weights": weight_diff(one_fp16, mirror_fp16),
        "mirrored_fp16_overflow_on_replica_0": overflows[0],
        "mirrored_fp16_overflow_on_replica_1": overflows[1],
        "masked_token_loss_vs_numpy_relative": abs(token_loss - numpy_token_loss) / numpy_token_loss,
        "skip_log_seen": any(
            "skipped the 2 global batches" in m and "MirroredStrategy" in m
            for m in capture.messages),
    }))


if __name__ == "__main__":
    main()
