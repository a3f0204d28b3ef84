"""MirroredStrategy over 2 logical CPUs vs one device; prints diffs as JSON.

Run by tests/test_training.py in a subprocess, because the CPU must be split
into logical devices before TensorFlow initialises.
"""

import json
import logging
import os
import sys
import tempfile

import numpy as np

import tfllm  # noqa: F401
import tensorflow as tf
from absl import logging as absl_logging

from tfllm.training import Trainer, create_optimizer, split_cpu_into_logical_devices

sys.path.insert(0, os.path.dirname(__file__))
import tiny_training as tt  # noqa: E402

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
    evaluation = mirror.evaluate(tt.eval_dataset_fn(8, num_examples=11))
    reference = tt.numpy_eval(mirror.model, num_examples=11)

    print(json.dumps({
        "mirrored_vs_one_device_weights": weight_diff(one, mirror),
        "mirrored_vs_one_device_loss": abs(
            one_results["train"]["loss"] - mirror_results["train"]["loss"]),
        "mirrored_accum_vs_one_device_big_batch_weights": weight_diff(one, accum),
        "mirrored_resume_vs_straight_weights": weight_diff(mirror, resumed),
        "mirrored_eval_vs_numpy_loss": abs(evaluation["loss"] - reference["loss"]),
        "mirrored_eval_vs_numpy_accuracy": abs(
            evaluation["accuracy"] - reference["accuracy"]),
        "skip_log_seen": any(
            "skipped the 2 global batches" in m and "MirroredStrategy" in m
            for m in capture.messages),
    }))


if __name__ == "__main__":
    main()
