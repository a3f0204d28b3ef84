"""`cast_weights`: a copy of a model whose weights are another float dtype (bfloat16 serving and decoding).

The one way tfllm makes a half-precision model: `tools/export.py
--serving_precision=bfloat16` for every head (`tfllm.export.export_folder`),
bfloat16 decoding (`export_gpt(precision=...)`, `benchmark.py generate`) and
the int8 export's float32 copy before quantizing all call it.
"""

import contextlib

import keras
from keras import ops

from tfllm.errors import ConfigError
from tfllm.models.pretrained import build
from tfllm.models.task import Task

# Weight dtypes `cast_weights` accepts: float32 (a plain copy) or half-width floats; and their short names.
WEIGHT_DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` for the block. Task heads take the backbone's policy, which
    is the global one when the model is built (as in training under --mixed_precision)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cast_weights(model, dtype="bfloat16", spec=None):
    """A copy of `model` (a task or a backbone) built under Keras' plain `dtype` policy, its weights cast to it.

    Rebuilt rather than cast in place: a Keras layer's variables take their
    dtype when they are created. The plain "bfloat16" policy stores the
    weights in bfloat16 (half the bytes a decoding step or a request reads)
    and multiplies in bfloat16, with no per-call weight casts ("mixed_bfloat16"
    keeps float32 variables and casts every kernel on every call); LayerNorm
    statistics, the attention softmax and the heads' logits stay float32 (the
    layers cast). `spec` (the model's config.json, `tfllm.models.load`'s
    `config`) rebuilds it from that, which re-applies any PEFT layers so that
    the weight lists line up one to one; without it the copy comes from the
    model's own config (a model without PEFT layers).
    """
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in WEIGHT_DTYPES:
        raise ConfigError(f"weights dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    tokenizer = getattr(model, "tokenizer", None)
    with dtype_policy(dtype):
        if spec is not None:
            copy = build(spec, {"dtype": dtype}, tokenizer)
        elif isinstance(model, Task):
            backbone = type(model.backbone).from_config({**model.backbone.get_config(), "dtype": dtype})
            copy = type(model)(backbone, **model.head_config())
            if tokenizer is not None:
                copy.tokenizer = tokenizer
        else:
            copy = type(model).from_config({**model.get_config(), "dtype": dtype})
    if len(copy.weights) != len(model.weights):
        raise ValueError(f"cast_weights: {len(copy.weights)} weights in the copy, {len(model.weights)} in the model")
    for target, source in zip(copy.weights, model.weights, strict=True):
        target.assign(ops.cast(source, target.dtype))
    return copy
