"""`--serving_precision`: what an exported encoder computes in, whatever policy it was trained under.

- `float32` (the default): float32 weights and compute. A run trained with
  `--mixed_precision=bf16` saves a `mixed_bfloat16` policy in its config.json;
  its export computes in float32 all the same unless bfloat16 is asked for.
- `bfloat16`: Keras' "bfloat16" policy: weights stored in bfloat16 (half the
  variables' size) and matmuls in bfloat16, with no per-call weight casts
  ("mixed_bfloat16" keeps float32 weights and casts every kernel on every
  call: measured slower at batch 1, docs/serving.md). LayerNorm statistics
  (`keras.ops.layer_normalization` computes in at least float32), the
  attention softmax (tfllm's one float32 softmax) and the head's logits stay
  float32.
- `int8`: Keras' post-training `model.quantize("int8")` on the float32 model
  (`quantize_int8`): int8 Dense/EinsumDense kernels with per-output-channel
  scales, activations quantized on the fly; token and segment embeddings int8
  with per-row scales; position embeddings and LayerNorm stay float32.
`bf16` and `fp32` are accepted spellings.
"""

import warnings

import keras

from tfllm.errors import ConfigError

SERVING_PRECISIONS = ("float32", "bfloat16", "int8")
SPELLINGS = {"fp32": "float32", "bf16": "bfloat16"}
# What each precision computes in, for the one log line of an export.
DESCRIPTIONS = {
    "float32": "float32 weights and compute",
    "bfloat16": "bfloat16 weights and matmuls; LayerNorm, softmax and outputs in float32",
    "int8": "int8 Dense/EinsumDense kernels and token embeddings (Keras model.quantize); LayerNorm float32",
}


def resolve_serving_precision(value):
    """`value` as one of `SERVING_PRECISIONS` (also `fp32`, `bf16`), or a one-line ConfigError naming the flag."""
    name = SPELLINGS.get(str(value).lower(), str(value).lower())
    if name not in SERVING_PRECISIONS:
        raise ConfigError(f"--serving_precision={value}: expected one of {', '.join(SERVING_PRECISIONS)} "
                          "(or fp32, bf16)")
    return name


def saved_policy(spec):
    """The dtype policy name a tfllm config.json's model was saved under (its backbone's), or "float32"."""
    config = spec.get("model", {}).get("config", {})
    backbone = config.get("backbone")
    target = backbone.get("config", {}) if isinstance(backbone, dict) else config
    dtype = target.get("dtype")
    if isinstance(dtype, dict):  # a serialized DTypePolicy
        dtype = dtype.get("config", {}).get("name")
    return dtype or "float32"


def quantize_int8(model):
    """Keras' post-training int8 quantization of every Dense/EinsumDense kernel and Embedding of `model`, in place.

    `type_check=False`: Keras quantizes only its own classes by default, and
    would skip tfllm's `EinsumDense` (a subclass that changes only the float
    call) and with it every attention projection, leaving them float32.
    Quantized, the layer runs Keras' own `quantized_call`.
    """
    with warnings.catch_warnings():  # one "does not have a `quantize` method" per LayerNorm, Dropout, ...
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize("int8", type_check=False)


def spec_of(model, class_name):
    """A config.json-like spec for a model loaded from a published folder (no PEFT), for `cast_weights`."""
    return {"tfllm_class": class_name, "model": keras.saving.serialize_keras_object(model)}
