"""Tiny training run that tests/test_preemption.py kills with SIGKILL and re-runs.

    python preemptible_training.py MODEL_DIR [--max_steps=60] [--checkpoint_every=10]

One CPU device, a model with dropout (so the RNG state matters), a seeded
shuffle; every update sleeps --step_seconds on the host, as a bigger model
would take, so the test can kill it between checkpoints. Re-running the same
command resumes. Prints the final metrics as JSON on the last stdout line.
"""

import json
import os
import sys

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from tfllm.training import Trainer
from tfllm.training import create_optimizer

sys.path.insert(0, os.path.dirname(__file__))
import tiny_training as tt

flags.DEFINE_integer("max_steps", 60, "Optimizer updates.")
flags.DEFINE_integer("checkpoint_every", 10, "Checkpoint interval.")
flags.DEFINE_float("step_seconds", 0.05, "Host sleep per update.")
flags.DEFINE_float("dropout", 0.3, "Dropout rate of the tiny model.")
FLAGS = flags.FLAGS
BATCH = 8


def main(argv):
    logging.set_verbosity(logging.INFO)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tt.build_model(dropout=FLAGS.dropout)
        optimizer = create_optimizer(1e-2, total_steps=FLAGS.max_steps, warmup_steps=5)
    trainer = Trainer(
        model, optimizer, tt.loss_fn, BATCH, argv[1], strategy,
        metric_fns={"accuracy": tt.accuracy_fn},
        log_every=FLAGS.checkpoint_every, checkpoint_every=FLAGS.checkpoint_every,
    )
    tt.slow_down(trainer, FLAGS.step_seconds)
    results = trainer.train(tt.train_dataset_fn(BATCH), FLAGS.max_steps)
    print(json.dumps({"step": int(trainer.step.numpy()), "train": results["train"]}), flush=True)


if __name__ == "__main__":
    app.run(main)
