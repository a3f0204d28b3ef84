"""Rotary position embedding (RoPE): frequencies for Hugging Face's `rope_type`s, and applying them.

The settings are Hugging Face's own: `rope_theta` and a `rope_scaling` dict
(`rope_type` "default", "linear" or "llama3" and their fields), kept as one
dict in the model config so a checkpoint's values map one to one. keras-hub
spreads the same settings over constructor fields of two layers
(`RotaryEmbedding` for linear scaling, `LlamaRotaryEmbedding` for Llama 3),
which would mean one mapping per rope type here instead of one table.
"""

import math

import numpy as np
from keras import ops

from tfllm.errors import ConfigError

ROPE_TYPES = ("default", "linear", "llama3")


def rope_type(scaling):
    """The rope type a `rope_scaling` dict (or None) names; "type" is the older spelling of "rope_type"."""
    scaling = scaling or {}
    return scaling.get("rope_type", scaling.get("type", "default"))


def inverse_frequencies(head_dim, theta=10000.0, scaling=None):
    """The [head_dim // 2] rotation frequencies, float32, as `transformers.modeling_rope_utils` computes them.

    "linear" divides every frequency by `factor`; "llama3" divides only the
    low frequencies (wavelength above original_max_position_embeddings /
    low_freq_factor) and interpolates between the two bands.
    """
    kind = rope_type(scaling)
    if kind not in ROPE_TYPES:
        raise ConfigError(f"rope_type {kind!r} is not supported (supported: {', '.join(ROPE_TYPES)})")
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    inv_freq = (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)
    if kind == "linear":
        inv_freq = inv_freq / np.float32(scaling["factor"])
    elif kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_context = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / inv_freq
        scaled = np.where(wavelength > old_context / low, inv_freq / factor, inv_freq)
        smooth = (old_context / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelength >= old_context / high) & (wavelength <= old_context / low)
        inv_freq = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv_freq


def apply_rotary_embedding(x, inv_freq, start_index=0):
    """Rotate x [B, T, N, H] for positions start_index..start_index+T-1 (the "rotate half" layout of HF Llama)."""
    positions = ops.cast(ops.arange(ops.shape(x)[1]) + start_index, "float32")
    angles = positions[:, None] * ops.convert_to_tensor(inv_freq)[None, :]  # [T, H/2], in float32 as HF
    angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]
    cos, sin = ops.cast(ops.cos(angles), x.dtype), ops.cast(ops.sin(angles), x.dtype)
    first, second = ops.split(x, 2, axis=-1)
    return x * cos + ops.concatenate([-second, first], axis=-1) * sin
