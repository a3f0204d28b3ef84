"""Initialise a backbone from an earlier tfllm run (e.g. pretraining) before fine-tuning."""

import tensorflow as tf
from absl import logging


def restore_backbone(backbone, path):
    """Load `backbone`'s weights from a tfllm checkpoint of any model that has a `.backbone`.

    `path` is a run's model_dir (its latest checkpoint is used), its
    `checkpoints/` folder, or a checkpoint prefix. Heads in the checkpoint are
    ignored; every backbone weight must be found, else an error names what is
    missing (no silent partial load).
    """
    prefix = path
    for folder in (path, f"{path.rstrip('/')}/checkpoints"):
        if tf.io.gfile.isdir(folder) and tf.train.latest_checkpoint(folder):
            prefix = tf.train.latest_checkpoint(folder)
            break
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"--init_checkpoint={path}: no checkpoint found (expected a tfllm model_dir, "
            "its checkpoints/ folder, or a checkpoint prefix with a .index file)"
        )
    status = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone)).read(prefix)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(
            f"--init_checkpoint={prefix} does not hold every weight of this backbone "
            f"(different architecture or size?): {str(e)[:500]}"
        ) from None
    status.expect_partial()
    logging.info("Initialised the backbone from %s", prefix)
    return prefix
