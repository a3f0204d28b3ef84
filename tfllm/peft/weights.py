"""Save and load only what PEFT trained (PEFT weights + task head): a small file applied on top of a base model.

    save_peft_weights(model, "runs/sst2_lora/peft_weights.npz")
    # later, in another process:
    model = BertClassifier(Bert.from_pretrained("runs/base"), num_classes=2)
    load_peft_weights(model, "runs/sst2_lora/peft_weights.npz")  # re-applies the method, then loads

The file is a NumPy `.npz`: one array per trainable variable, keyed by its
Keras path (e.g. `encoder_layer_0/self_attention/query/lora_update/lora_a`,
`logits/kernel`), plus the PEFT config as JSON. The base weights are not in
it: load the same base checkpoint first.
"""

import io
import json
import os

import numpy as np
import tensorflow as tf

from tfllm.errors import ConfigError
from tfllm.peft.methods import apply_peft
from tfllm.peft.methods import peft_config

_CONFIG_KEY = "__peft_config__"


def save_peft_weights(model, path):
    """Write `model`'s trainable weights (PEFT weights + head) and its PEFT config to `path` (.npz)."""
    config = peft_config(model)
    if config is None or config["method"] == "none":
        raise ValueError("save_peft_weights: no PEFT method applied to this model (use apply_peft); "
                         "for full fine-tuning save the whole model (save_pretrained).")
    if config.get("merged"):
        raise ValueError("save_peft_weights: LoRA was merged into the base kernels (merge_lora); "
                         "save before merging, or save the whole model.")
    arrays = {}
    for variable in model.trainable_weights:
        if variable.path in arrays:
            raise ValueError(f"save_peft_weights: two trainable weights share the path {variable.path!r}")
        arrays[variable.path] = np.asarray(variable.numpy())
    arrays[_CONFIG_KEY] = np.array(json.dumps(config))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    if os.path.dirname(path):
        tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


def read_peft_config(path):
    """The PEFT config stored in a `save_peft_weights` file, e.g. `{"method": "lora", "rank": 8, ...}`.

    To rebuild a PEFT run's model before restoring one of its training
    checkpoints (which hold the PEFT weights too): build the base model, then
    `apply_peft(model, **read_peft_config(path))`, then restore.
    """
    return _read(path)[0]


def _read(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        stored = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
    if _CONFIG_KEY not in stored:
        raise ConfigError(f"{path} is not a PEFT weights file (no {_CONFIG_KEY})")
    return json.loads(str(stored.pop(_CONFIG_KEY))), stored


def load_peft_weights(model, path):
    """Load a `save_peft_weights` file into `model` (a base model with the same architecture and head).

    Applies the file's PEFT method first if `model` has none (call inside the
    strategy scope); if it has one, it must be the same. Every trainable
    weight must be in the file with the same shape, and every array in the
    file must have a place: otherwise a ValueError names what differs.
    Returns the PEFT config.
    """
    config, stored = _read(path)
    current = peft_config(model)
    if current is None:
        options = {k: v for k, v in config.items() if k != "method"}
        apply_peft(model, config["method"], **options)
    elif current != config:
        raise ConfigError(f"{path} holds PEFT {config}, but the model has {current}")
    variables = {v.path: v for v in model.trainable_weights}
    missing = sorted(set(variables) - set(stored))
    unexpected = sorted(set(stored) - set(variables))
    wrong_shape = [f"{name}: file {stored[name].shape}, model {tuple(variables[name].shape)}"
                   for name in sorted(set(variables) & set(stored))
                   if tuple(stored[name].shape) != tuple(variables[name].shape)]
    if missing or unexpected or wrong_shape:
        problems = []
        for label, items in (("missing from the file", missing), ("not in the model", unexpected),
                             ("different shapes", wrong_shape)):
            if items:
                problems.append(f"{len(items)} {label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
        raise ConfigError(f"{path} does not fit this model (different architecture, head or PEFT options?): "
                         + "; ".join(problems))
    for name, variable in variables.items():
        variable.assign(stored[name])
    return config
