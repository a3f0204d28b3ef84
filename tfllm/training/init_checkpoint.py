"""Initialise a backbone before fine-tuning: from an earlier tfllm run (e.g. pretraining) or a pretrained folder."""

import tensorflow as tf
from absl import logging

from tfllm.errors import CheckpointError
from tfllm.errors import ConfigError
from tfllm.hub import resolve_model_path
from tfllm.models.pretrained import is_pretrained_dir

# Config values that must agree for a pretrained folder's weights to fit a backbone.
_ARCHITECTURE = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                 "max_sequence_length", "num_segments", "activation", "layer_norm_epsilon", "position_embedding",
                 "position_offset", "embedding_dim", "pooler_activation")


def restore_backbone(backbone, path):
    """Load `backbone`'s weights from a tfllm checkpoint of any model that has a `.backbone`, or a pretrained folder.

    `path` is a run's model_dir (its latest checkpoint is used), its
    `checkpoints/` folder, or a checkpoint prefix; or a folder that
    `from_pretrained` reads (tfllm `save_pretrained`, Hugging Face, Google
    BERT, or a Hub name `hf://org/name[@revision]`). Heads in the checkpoint
    are ignored; every backbone weight must be found, else an error names what
    is missing (no silent partial load).
    """
    path = resolve_model_path(path)  # hf://org/name[@revision] -> its folder in the Hub cache
    if tf.io.gfile.exists(f"{path.rstrip('/')}/peft_weights.npz"):
        # Its checkpoints hold the frozen base weights; the adaptation lives in
        # the PEFT layers, which a plain backbone would silently leave out.
        raise ConfigError(
            f"--init_checkpoint={path} is a --peft run: initialising from it would drop its LoRA/adapter/prefix "
            "weights. Start from the base checkpoint it was tuned from, or in code rebuild it with "
            "tfllm.peft.load_peft_weights (and merge_lora) and save_pretrained the result."
        )
    if tf.io.gfile.isdir(path) and is_pretrained_dir(path):
        return _restore_from_pretrained(backbone, path)
    prefix = path
    for folder in (path, f"{path.rstrip('/')}/checkpoints"):
        if tf.io.gfile.isdir(folder) and tf.train.latest_checkpoint(folder):
            prefix = tf.train.latest_checkpoint(folder)
            break
    if not tf.io.gfile.exists(prefix + ".index"):
        raise CheckpointError(
            f"--init_checkpoint={path}: no checkpoint found (expected a tfllm model_dir, "
            "its checkpoints/ folder, or a checkpoint prefix with a .index file)"
        )
    status = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone)).read(prefix)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise CheckpointError(
            f"--init_checkpoint={prefix} does not hold every weight of this backbone "
            f"(different architecture or size?): {str(e)[:500]}"
        ) from None
    status.expect_partial()
    logging.info("Initialised the backbone from %s", prefix)
    return prefix


def _restore_from_pretrained(backbone, path):
    loaded = type(backbone).from_pretrained(path)
    ours, theirs = backbone.get_config(), loaded.get_config()
    differ = [f"{k}={theirs[k]!r} (this backbone: {ours[k]!r})" for k in _ARCHITECTURE
              if k in theirs and ours.get(k) != theirs[k]]
    if differ:
        raise ConfigError(f"--init_checkpoint={path} is a different architecture: {', '.join(differ)}")
    backbone.set_weights(loaded.get_weights())
    logging.info("Initialised the backbone from the pretrained folder %s", path)
    return path
