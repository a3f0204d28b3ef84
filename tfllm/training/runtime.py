"""What every training run does first: logging, seeds, precision policy, devices, strategy.

Plain arguments, no flags: `recipes/common.py` maps the recipes' flags onto it.
"""

import random

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfllm.errors import ConfigError
from tfllm.training.precision import read_cpu_flags
from tfllm.training.precision import resolve_precision
from tfllm.training.strategy import create_strategy
from tfllm.training.strategy import split_cpu_into_logical_devices

# bf16: TPUs, Ampere+ GPUs and CPUs with AVX512_BF16/AMX; float32's range, no
# loss scaling needed. fp16: older GPUs (V100, T4); the Trainer adds dynamic
# loss scaling (loss_scaling.py).
PRECISIONS = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def start_run(model_dir, strategy="auto", tpu=None, num_cpu_devices=1, seed=0, mixed_precision="none"):
    """Set up a training run and return its `tf.distribute.Strategy`.

    Args:
        model_dir: created if missing.
        strategy, tpu: see `create_strategy`.
        num_cpu_devices: split the CPU into this many logical devices (to try
            MirroredStrategy without accelerators); needs `strategy="mirrored"`
            to be used, and is refused otherwise.
        seed: seeds Python, NumPy and Keras (initialisation, dropout, shuffling).
        mixed_precision: "none", "bf16", "fp16" (the Keras global policy) or
            "auto": bf16 on a CPU with AVX512_BF16/AMX, else none
            (`tfllm.training.precision`); the choice is logged in one line.
    """
    logging.set_verbosity(logging.INFO)
    if num_cpu_devices > 1:
        if strategy != "mirrored":
            raise ConfigError(f"num_cpu_devices={num_cpu_devices} takes effect only with strategy='mirrored' "
                             f"(got {strategy!r})")
        split_cpu_into_logical_devices(num_cpu_devices)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.io.gfile.makedirs(model_dir)
    # The strategy first: it names the devices `auto` depends on (and multi_worker must come before any device query).
    distribution = create_strategy(strategy, tpu=tpu)
    precision, reason = resolve_precision(mixed_precision, read_cpu_flags(), accelerator_of(distribution))
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    logging.info("Mixed precision: --mixed_precision=%s -> %s (%s policy): %s", mixed_precision, precision,
                 PRECISIONS[precision], reason)
    return distribution


def accelerator_of(distribution):
    """"GPU" or "TPU" if the strategy's replicas run there, None for CPUs."""
    devices = " ".join(distribution.extended.worker_devices).upper()
    return next((kind for kind in ("TPU", "GPU") if f"/DEVICE:{kind}:" in devices), None)
