"""The tiny training run under MultiWorkerMirroredStrategy; TF_CONFIG comes from the environment.

    TF_CONFIG=... python multi_worker_tiny.py MODEL_DIR [MAX_STEPS] [STEP_SECONDS]

Run by tests/test_multi_worker.py, one process per worker; a checkpoint every
10 steps, each step slowed by STEP_SECONDS so a test can kill a worker mid-run.
"""

import os
import sys

from absl import logging

from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import create_strategy

sys.path.insert(0, os.path.dirname(__file__))
import tiny_training as tt


def main():
    strategy = create_strategy("multi_worker")  # before anything else touches TensorFlow
    logging.set_verbosity(logging.INFO)
    max_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=max_steps, warmup_steps=1)
    trainer = Trainer(model, optimizer, tt.loss_fn, 8, sys.argv[1], strategy,
                      log_every=10, checkpoint_every=10)
    tt.slow_down(trainer, float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    trainer.train(tt.train_dataset_fn(8), max_steps)


if __name__ == "__main__":
    main()
