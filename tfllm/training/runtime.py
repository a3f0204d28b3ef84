"""What every recipe does first: common flags, logging, seeding, precision, strategy."""

import random

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.training.strategy import STRATEGIES
from tfllm.training.strategy import create_strategy
from tfllm.training.strategy import split_cpu_into_logical_devices


# bf16: TPUs and Ampere+ GPUs, float32's range, no loss scaling needed. fp16:
# older GPUs (V100, T4); the Trainer adds dynamic loss scaling (loss_scaling.py).
PRECISIONS = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def define_common_flags(model_dir=None, batch_size=32, learning_rate=1e-3, seed=0):
    """Flags shared by every recipe: run location, strategy, optimizer basics, logging."""
    flags.DEFINE_string("model_dir", model_dir, "Checkpoints, TensorBoard logs and vocab go here. "
                        "Re-running the same command resumes from the latest checkpoint.")
    flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name, grpc://host:port address, or 'local' (--strategy=tpu).")
    flags.DEFINE_integer("num_cpu_devices", 1, "Split the CPU into this many logical devices "
                         "(for trying --strategy=mirrored without accelerators).")
    flags.DEFINE_integer("batch_size", batch_size, "Global batch size (over all replicas).")
    flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate (AdamW).")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to biases and LayerNorm).")
    flags.DEFINE_float("clipnorm", 1.0, "Global gradient-norm clipping.")
    flags.DEFINE_float("ema_momentum", None, "Also keep an exponential moving average of the weights "
                       "(e.g. 0.999) and evaluate and export with it at the end; 0 = none.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_bool("jit_compile", False, "Compile each forward + backward pass with XLA. Faster for "
                      "fixed-shape batches (GPT blocks); length-bucketed batches compile once per shape.")
    flags.DEFINE_enum("mixed_precision", "none", list(PRECISIONS), "Compute in bfloat16 or float16 "
                      "(float32 weights); fp16 adds dynamic loss scaling.")
    flags.DEFINE_integer("seed", seed, "Seed for initialisation, shuffling, dropout.")
    flags.DEFINE_integer("log_every", 100, "Log a progress line every N steps.")
    flags.DEFINE_integer("checkpoint_every", 1000, "Save a checkpoint every N steps.")
    flags.DEFINE_integer("steps_per_execution", 1, "Optimizer updates per host call (fewer round trips on "
                         "TPUs); logs, checkpoints and evals still land on their exact steps.", lower_bound=1)
    flags.DEFINE_float("time_budget_minutes", None, "Stop training after about this many minutes of this run "
                       "(checkpoint, evaluate and export as at the last step).", lower_bound=0.0)


def optimizer_options(FLAGS):
    """The `create_optimizer` keyword arguments the common flags set."""
    return dict(weight_decay=FLAGS.weight_decay, clipnorm=FLAGS.clipnorm, ema_momentum=FLAGS.ema_momentum)


def trainer_options(FLAGS):
    """The `Trainer` keyword arguments the common flags set."""
    budget = FLAGS.time_budget_minutes * 60 if FLAGS.time_budget_minutes else None
    return dict(log_every=FLAGS.log_every, checkpoint_every=FLAGS.checkpoint_every, jit_compile=FLAGS.jit_compile,
                steps_per_execution=FLAGS.steps_per_execution, time_budget_seconds=budget)


def setup(FLAGS):
    """Apply the common flags; returns the strategy. Call at the top of main()."""
    logging.set_verbosity(logging.INFO)
    if not FLAGS.model_dir:
        raise flags.IllegalFlagValueError("--model_dir is required")
    if FLAGS.num_cpu_devices > 1:
        split_cpu_into_logical_devices(FLAGS.num_cpu_devices)
    random.seed(FLAGS.seed)
    np.random.seed(FLAGS.seed)
    keras.utils.set_random_seed(FLAGS.seed)
    keras.mixed_precision.set_global_policy(PRECISIONS[FLAGS.mixed_precision])
    tf.io.gfile.makedirs(FLAGS.model_dir)
    strategy = create_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
    return strategy
