"""Original Google BERT TensorFlow checkpoints (`bert_config.json`, `bert_model.ckpt.*`) -> HF-style tensors.

Variables such as `bert/encoder/layer_0/attention/self/query/kernel` are
renamed to the Hugging Face names `hf_bert.py` maps (dense kernels [in, out]
transposed to HF's [out, in]), so both formats share one mapping. Covers the
MLM/NSP heads (`cls/predictions/*`, `cls/seq_relationship/*`) and the
classifier of Google's `run_classifier.py` (`output_weights`, `output_bias`).
"""

import glob
import os
import re

import tensorflow as tf

from tfllm.convert.config_fields import read_json
from tfllm.convert.errors import ConversionError

CONFIG_FILE = "bert_config.json"
# Not model weights: training state that fine-tuned checkpoints may carry.
_TRAINING_STATE = re.compile(r"(^global_step$|^_CHECKPOINTABLE_OBJECT_GRAPH$|/adam_[mv]$|^good_steps$|^loss_scale$)")
_FIXED = {
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",  # stored [2, D], as HF
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
    "output_weights": "classifier.weight",  # run_classifier.py: [num_labels, D], as HF
    "output_bias": "classifier.bias",
}


def find_checkpoint(model_dir):
    """The checkpoint prefix in a Google BERT folder (`bert_model.ckpt` or any `*.ckpt*.index`)."""
    latest = tf.train.latest_checkpoint(model_dir)
    if latest:
        return latest
    indexes = sorted(glob.glob(os.path.join(model_dir, "*.ckpt*.index")))
    return indexes[0][: -len(".index")] if indexes else None


def hf_name(name):
    """Google variable name -> HF tensor name, and whether the value must be transposed."""
    if name in _FIXED:
        return _FIXED[name], False
    parts = name.split("/")
    if parts[0] == "bert":
        parts = parts[1:]
    transpose = parts[-1] == "kernel"
    parts[-1] = {"kernel": "weight", "gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
    if parts[0] == "embeddings" and parts[1] != "LayerNorm":
        parts = ["embeddings", parts[1], "weight"]
    parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in parts]
    return ".".join(parts), transpose


def read_google_checkpoint(model_dir):
    """(HF-style config dict, HF-named numpy tensors) of a Google BERT checkpoint folder."""
    config_path = os.path.join(model_dir, CONFIG_FILE)
    config = read_json(config_path)
    prefix = find_checkpoint(model_dir)
    if prefix is None:
        raise ConversionError(
            f"{model_dir}: no TensorFlow checkpoint (looked for bert_model.ckpt.index, *.ckpt*.index)")
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # this prefix, never taken for a folder (ram://)
    tensors = {}
    for name in reader.get_variable_to_shape_map():
        if _TRAINING_STATE.search(name):
            continue
        target, transpose = hf_name(name)
        value = reader.get_tensor(name)
        tensors[target] = value.T if transpose else value
    return config, tensors
