"""Reads the weight files of a Hugging Face model directory into numpy arrays.

Supported: `model.safetensors`, sharded `model.safetensors.index.json`, and
`pytorch_model.bin` (plain or sharded) only through
`torch.load(weights_only=True)`, which refuses pickles that would run code.
"""

import os

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from tfllm.convert.config_fields import read_json
from tfllm.convert.errors import ConversionError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_BIN_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, TORCH_BIN_INDEX)


def has_hf_weights(model_dir):
    return any(os.path.exists(os.path.join(model_dir, f)) for f in WEIGHT_FILES)


def _shards(model_dir, index_file):
    path = os.path.join(model_dir, index_file)
    weight_map = read_json(path).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConversionError(f"{path}: expected a weight_map of tensor name -> shard file")
    return sorted(set(weight_map.values())), set(weight_map)


def _read_safetensors(path):
    try:
        return load_file(path)
    except SafetensorError as e:  # a truncated or garbled file
        raise ConversionError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def _read_torch_bin(path):
    try:
        import torch  # noqa: PLC0415  (optional: only pytorch_model.bin needs it)
    except ImportError:
        raise ConversionError(
            f"{path}: reading pytorch_model.bin needs PyTorch (for torch.load(weights_only=True)); "
            "install torch, or convert the checkpoint to model.safetensors"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an unpickling error: the file wants to run code
        raise ConversionError(
            f"{path}: refused to load: it cannot be read with torch.load(weights_only=True) "
            f"({type(e).__name__}: {str(e)[:200]}). tfllm never unpickles arbitrary objects; "
            "convert the checkpoint to model.safetensors with a trusted tool."
        ) from None
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def read_hf_weights(model_dir):
    """All tensors of a HF model directory as `{name: np.ndarray}` (float32 for floating weights)."""
    model_dir = os.fspath(model_dir)

    def exists(f):
        return os.path.exists(os.path.join(model_dir, f))

    if exists(SAFETENSORS_INDEX):
        files, names = _shards(model_dir, SAFETENSORS_INDEX)
        read = _read_safetensors
    elif exists(SAFETENSORS):
        files, names, read = [SAFETENSORS], None, _read_safetensors
    elif exists(TORCH_BIN_INDEX):
        files, names = _shards(model_dir, TORCH_BIN_INDEX)
        read = _read_torch_bin
    elif exists(TORCH_BIN):
        files, names, read = [TORCH_BIN], None, _read_torch_bin
    else:
        raise ConversionError(f"{model_dir}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    tensors = {}
    for name in files:
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            raise ConversionError(f"{path}: shard listed in the index is missing")
        tensors.update(read(path))
    if names is not None and set(tensors) != names:
        missing = sorted(names - set(tensors))
        raise ConversionError(f"{model_dir}: tensors listed in the index but not in any shard: {missing[:10]}")
    return {k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v for k, v in tensors.items()}
