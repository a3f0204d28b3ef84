"""Reads the weight files of a Hugging Face model directory into numpy arrays.

Supported: `model.safetensors`, sharded `model.safetensors.index.json`, and
`pytorch_model.bin` (plain or sharded) only through
`torch.load(weights_only=True)`, which refuses pickles that would run code.
Floating weights come back as float32, bfloat16 ones included (most
published Llama-family checkpoints are bfloat16, which NumPy itself lacks).
"""

import io
import json
import os
import struct

import ml_dtypes
import numpy as np
import tensorflow as tf
from safetensors import SafetensorError
from safetensors.numpy import load
from safetensors.numpy import load_file

from tfllm.convert.config_fields import read_json
from tfllm.convert.errors import ConversionError
from tfllm.files import is_remote
from tfllm.files import read_bytes

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_BIN_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, TORCH_BIN_INDEX)


def has_hf_weights(model_dir):
    return any(tf.io.gfile.exists(os.path.join(model_dir, f)) for f in WEIGHT_FILES)


def _shards(model_dir, index_file):
    path = os.path.join(model_dir, index_file)
    weight_map = read_json(path).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConversionError(f"{path}: expected a weight_map of tensor name -> shard file")
    return sorted(set(weight_map.values())), set(weight_map)


def _read_safetensors(path):
    try:
        return load(read_bytes(path)) if is_remote(path) else load_file(path)
    except SafetensorError as e:  # a truncated or garbled file
        raise ConversionError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    except TypeError:  # "data type 'bfloat16' not understood": safetensors.numpy has no bfloat16
        return _read_safetensors_with_ml_dtypes(path)


_DTYPES = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
           "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors_with_ml_dtypes(path):
    """A safetensors file read from its header (8-byte length, JSON, then the raw tensors), bfloat16 included.

    `ml_dtypes` (a TensorFlow dependency) gives NumPy the bfloat16 type.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        data = f.read()
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] not in _DTYPES:
            raise ConversionError(f"{path}: tensor {name} has dtype {spec['dtype']}, which tfllm cannot read")
        begin, end = spec["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], _DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return tensors


def _read_torch_bin(path):
    try:
        import torch  # noqa: PLC0415  (optional: only pytorch_model.bin needs it)
    except ImportError:
        raise ConversionError(
            f"{path}: reading pytorch_model.bin needs PyTorch (for torch.load(weights_only=True)); "
            "install torch, or convert the checkpoint to model.safetensors"
        ) from None
    try:
        source = io.BytesIO(read_bytes(path)) if is_remote(path) else path
        state = torch.load(source, map_location="cpu", weights_only=True)
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
        return tf.io.gfile.exists(os.path.join(model_dir, f))

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
        if not tf.io.gfile.exists(path):
            raise ConversionError(f"{path}: shard listed in the index is missing")
        tensors.update(read(path))
    if names is not None and set(tensors) != names:
        missing = sorted(names - set(tensors))
        raise ConversionError(f"{model_dir}: tensors listed in the index but not in any shard: {missing[:10]}")
    return {k: v.astype(np.float32) if _is_float(v.dtype) else v for k, v in tensors.items()}


def _is_float(dtype):
    return np.issubdtype(dtype, np.floating) or dtype == ml_dtypes.bfloat16
