"""Turn a tfllm model into a parameter-efficient one: LoRA, bottleneck adapters or prefix tuning, backbone frozen.

    model = BertClassifier(Bert.from_pretrained("bert-base-uncased/"), num_classes=2)
    apply_peft(model, "lora", rank=8, alpha=16)   # or "adapter" (size=64), "prefix" (length=16)
    trainable, total = count_parameters(model)    # only the LoRA weights and the head train
    ...train...
    save_peft_weights(model, "peft.npz")          # small: PEFT weights + head
    merge_lora(model)                             # plain kernels again, for export

Every method works on any model built from `tfllm.layers.MultiHeadAttention`
and `FeedForward` or their subclasses (BERT, GPT, seq2seq, Llama); the "backbone" is `model.backbone`
if the model has one (its task head then stays trainable), else the model.
"""

import contextlib
import math
import re

import keras
from absl import logging
from keras import ops

from tfllm.errors import ConfigError
from tfllm.layers.attention import MultiHeadAttention
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.feed_forward import GatedFeedForward
from tfllm.peft.layers import BottleneckAdapter
from tfllm.peft.layers import KeyValuePrefix
from tfllm.peft.layers import LoraUpdate

METHODS = ("none", "lora", "adapter", "prefix")

# LoRA targets are the projection layers' (checkpoint) names.
ATTENTION_PROJECTIONS = ("query", "key", "value", "attention_output")
FEED_FORWARD_PROJECTIONS = ("gate", "intermediate", "output")  # "gate": only gated MLPs (Llama) have one
TARGET_GROUPS = {
    "attention": ATTENTION_PROJECTIONS,
    "ffn": FEED_FORWARD_PROJECTIONS,
    "all": ATTENTION_PROJECTIONS + FEED_FORWARD_PROJECTIONS,
}
_PROJECTIONS = {  # name -> (owner class, attribute)
    "query": (MultiHeadAttention, "query_dense"),
    "key": (MultiHeadAttention, "key_dense"),
    "value": (MultiHeadAttention, "value_dense"),
    "attention_output": (MultiHeadAttention, "output_dense"),
    "gate": (GatedFeedForward, "gate_dense"),
    "intermediate": (FeedForward, "intermediate_dense"),
    "output": (FeedForward, "output_dense"),
}


def apply_peft(model, method, **options):
    """Add one PEFT method to `model` and freeze its backbone (except the new weights).

    Args:
        model: a tfllm model (e.g. `BertClassifier`), built, weights loaded.
            Call inside the strategy scope the model was built in.
        method: "none" (full fine-tuning: nothing changes), "lora",
            "adapter" or "prefix".
        **options: for "lora": `rank`, `alpha`, `dropout`, `targets`
            (see `add_lora`); "adapter": `size`; "prefix": `length`.

    Returns the config `{"method": ..., **options}`, also kept on the model
    (`peft_config(model)`) for `save_peft_weights`/`load_peft_weights`.
    """
    if method not in METHODS:
        raise ConfigError(f"PEFT method must be one of {METHODS}, got {method!r}")
    if peft_config(model) is not None:
        raise ValueError(f"This model already has PEFT applied: {peft_config(model)}")
    if method == "lora":
        options["targets"] = list(expand_targets(options.get("targets", ATTENTION_PROJECTIONS)))
        add_lora(model, **options)
    elif method == "adapter":
        add_adapters(model, **options)
    elif method == "prefix":
        add_prefix(model, **options)
    elif options:
        raise ConfigError(f"PEFT method 'none' takes no options, got {options}")
    if method != "none":
        freeze_backbone(model)
    config = dict(method=method, **options)
    object.__setattr__(model, "_tfllm_peft_config", config)  # Plain attribute: not tracked or saved by Keras.
    return config


def peft_config(model):
    """The config `apply_peft` recorded on `model`, or None."""
    return getattr(model, "_tfllm_peft_config", None)


# ---- LoRA -----------------------------------------------------------------


def expand_targets(targets):
    """Projection names from names and groups ("attention", "ffn", "all"), in a fixed order, checked."""
    if isinstance(targets, str):
        targets = targets.split(",")
    names = set()
    for target in targets:
        target = target.strip()
        if target in TARGET_GROUPS:
            names.update(TARGET_GROUPS[target])
        elif target in _PROJECTIONS:
            names.add(target)
        else:
            raise ConfigError(f"Unknown LoRA target {target!r}: use {sorted(_PROJECTIONS)} or {sorted(TARGET_GROUPS)}")
    return tuple(name for name in _PROJECTIONS if name in names)


def add_lora(model, rank=8, alpha=None, dropout=0.0, targets=ATTENTION_PROJECTIONS):
    """Add a rank-`rank` update, scaled by alpha / rank, to each target projection of every layer.

    The base kernels stop training (`freeze_backbone` freezes the rest).

    Keras 3's own LoRA (`Dense.enable_lora` / `EinsumDense.enable_lora`) is
    used where it computes the paper's LoRA: for `Dense` (the feed-forward
    projections) and for the attention output `EinsumDense` ([N, H, D]
    kernel: A [N, H, r], B [r, D]), when `dropout` is 0. It does not fit:
    - for query/key/value ([D, N, H] kernels): Keras factors the kernel's
      *last* axis only, A [D, N, r] and B [r, H], a per-head update with
      N·r·D + r·H weights and rank up to N·r, not the rank-r update of the
      whole [D, N·H] projection (D·r + r·N·H weights) that LoRA and PEFT
      libraries use;
    - for LoRA dropout: Keras merges A·B into its `kernel` property, so there
      is no separate low-rank path whose input could be dropped.
    Those projections get a `LoraUpdate` instead, attached as
    `layer.lora_update` and added to the layer's output by
    `tfllm.layers.attention.project`. (Keras' `lora_alpha` is used, so
    alpha scaling is the same on both paths.)

    Args:
        rank: r.
        alpha: scale numerator (update scaled by alpha / rank); default r.
        dropout: dropout on the LoRA path's input while training.
        targets: projection names ("query", "key", "value",
            "attention_output", "gate", "intermediate", "output") or groups
            ("attention", "ffn", "all").

    Returns the number of projections adapted.
    """
    alpha = rank if alpha is None else alpha
    adapted = 0
    for dense in _target_projections(_backbone(model), expand_targets(targets)):
        if getattr(dense, "lora_enabled", False) or getattr(dense, "lora_update", None) is not None:
            raise ValueError(f"{dense.path} already has LoRA")
        num_input_axes = _num_input_axes(dense)
        keras_fits = dropout == 0 and len(dense.kernel.shape) - num_input_axes == 1 and not dense.quantization_mode
        if keras_fits:
            dense.enable_lora(rank, lora_alpha=alpha)  # Also freezes the kernel.
        else:
            update = LoraUpdate(dense.kernel.shape, num_input_axes, rank, alpha, dropout,
                                dtype=dense.dtype_policy, name="lora_update")
            with _name_scope(dense.path):  # Weight paths .../query/lora_update/lora_a
                update.build()
            _attach(dense, "lora_update", update)
            dense.kernel.trainable = False
        adapted += 1
    if not adapted:
        raise ConfigError(f"No {targets} projections found in {model.name}")
    return adapted


def merge_lora(model):
    """Fold every LoRA update into its base kernel, W ← W + (alpha/r)·A·B, and remove the LoRA weights and ops.

    Outputs are unchanged (up to float rounding); the model is then a plain
    tfllm model whose `save_pretrained` and exports hold only the usual
    weights (adapters and prefixes, which cannot be folded, stay). Call it
    after training and before tracing new functions (export): functions
    traced earlier still hold the LoRA path. Returns the number of projections
    merged (0 if there was no LoRA).
    """
    merged = 0
    for dense in _backbone(model)._flatten_layers():
        if getattr(dense, "lora_enabled", False):  # Keras' own LoRA.
            a, b = dense.lora_kernel_a, dense.lora_kernel_b
            delta = (dense.lora_alpha / dense.lora_rank) * ops.tensordot(a, b, axes=1)
            # `_kernel` is Keras' base kernel; the public `kernel` adds A·B on every read.
            dense._kernel.assign(ops.cast(dense._kernel + delta, dense._kernel.dtype))
            for name in ("lora_kernel_a", "lora_kernel_b"):
                # What Keras' `del layer.<variable>` does, without its gc.collect() (~1 s each here).
                dense._untrack_variable(getattr(dense, name))
                _untrack_for_saving(dense, name)
                object.__delattr__(dense, name)
            dense.lora_enabled, dense.lora_rank, dense.lora_alpha = False, None, None
            merged += 1
        update = getattr(dense, "lora_update", None)
        if update is not None:
            dense.kernel.assign(ops.cast(dense.kernel + update.kernel_delta(), dense.kernel.dtype))
            _detach(dense, "lora_update")
            merged += 1
    config = peft_config(model)
    if merged and config is not None:
        config["merged"] = True
    return merged


def _target_projections(backbone, names):
    for layer in backbone._flatten_layers():
        for name in names:
            owner, attribute = _PROJECTIONS[name]
            if isinstance(layer, owner):
                yield getattr(layer, attribute)


def _num_input_axes(dense):
    """How many leading kernel axes a Dense/EinsumDense contracts with its input."""
    if isinstance(dense, keras.layers.Dense):
        return 1
    inputs, kernel = re.match(r"([a-z.]+),([a-z]+)->", dense.equation.replace(" ", "")).groups()
    n = sum(axis in inputs for axis in kernel)
    if any(axis not in inputs for axis in kernel[:n]) or any(axis in inputs for axis in kernel[n:]):
        raise ValueError(f"LoRA needs a kernel laid out input axes first; {dense.path} has {dense.equation!r}")
    return n


# ---- Adapters and prefixes -------------------------------------------------


def add_adapters(model, size=64):
    """A `BottleneckAdapter` of width `size` after every attention (self and cross) and feed-forward sublayer.

    They act on the sublayer's output before its residual connection and
    LayerNorm, as in Houlsby et al. (2019), and start as the identity. The
    LayerNorms stay frozen (Houlsby et al. also train them; `--peft=adapter`
    here trains only the adapters and the head). Returns the number added.
    """
    added = 0
    for layer in _backbone(model)._flatten_layers():
        if isinstance(layer, (MultiHeadAttention, FeedForward)):
            if layer.adapter is not None:
                raise ValueError(f"{layer.path} already has an adapter")
            adapter = BottleneckAdapter(size, dtype=layer.dtype_policy, name="adapter")
            hidden_dim = layer.output_dense.kernel.shape[-1]
            with _name_scope(layer.path):
                adapter.build((None, None, hidden_dim))
            _attach(layer, "adapter", adapter)
            added += 1
    if not added:
        raise ConfigError(f"No attention or feed-forward layers found in {model.name}")
    return added


def add_prefix(model, length=16):
    """A `KeyValuePrefix` of `length` positions in every self-attention layer (not cross-attention).

    The padding (and causal) mask is extended so that every query sees the
    prefix. Returns the number of layers given a prefix.
    """
    added = 0
    for layer in _backbone(model)._flatten_layers():
        if isinstance(layer, MultiHeadAttention) and layer.name == "self_attention":
            if layer.prefix is not None:
                raise ValueError(f"{layer.path} already has a prefix")
            # One prefix per key/value head: grouped-query attention shares it within each group of query heads,
            # as it shares the keys and values (Hugging Face PEFT sizes it so too, since peft#1901), and the
            # keys and values are never repeated to one per query head.
            heads = getattr(layer, "num_key_value_heads", layer.num_heads)
            prefix = KeyValuePrefix(length, heads, layer.key_dim, dtype=layer.dtype_policy, name="prefix")
            with _name_scope(layer.path):
                prefix.build()
            _attach(layer, "prefix", prefix)
            added += 1
    if not added:
        raise ConfigError(f"No self-attention layers found in {model.name}")
    return added


# ---- Freezing and counting -------------------------------------------------


def peft_weights(model):
    """The variables PEFT added to `model`'s backbone (LoRA, adapters, prefixes)."""
    found = []
    for layer in _backbone(model)._flatten_layers():
        if isinstance(layer, (LoraUpdate, BottleneckAdapter, KeyValuePrefix)):
            found.extend(layer.weights)
        elif getattr(layer, "lora_enabled", False):
            found.extend([layer.lora_kernel_a, layer.lora_kernel_b])
    return found


def freeze_backbone(model):
    """Make every backbone weight non-trainable except the PEFT weights; the task head is left as it is.

    Freezes variables one by one (`variable.trainable = False`, as Keras'
    `enable_lora` does for the kernel): `layer.trainable = False` would hide
    the PEFT weights inside the backbone too.
    """
    keep = {id(v) for v in peft_weights(model)}
    for variable in _backbone(model).weights:
        if id(variable) not in keep:
            variable.trainable = False


def count_parameters(model):
    """`(trainable, total)` numbers of scalar weights."""

    def size(variables):
        return sum(math.prod(int(d) for d in v.shape) for v in variables)

    return size(model.trainable_weights), size(model.weights)


def log_parameter_counts(model, prefix=""):
    """Logs and returns "N trainable of M parameters (p%)"."""
    trainable, total = count_parameters(model)
    line = f"{prefix}{trainable:,} trainable of {total:,} parameters ({100.0 * trainable / max(total, 1):.2f}%)"
    logging.info("%s", line)
    return line


# ---- Attaching sublayers to built layers -------------------------------------


def _backbone(model):
    return getattr(model, "backbone", model)


def _attach(parent, name, sublayer):
    """`parent.<name> = sublayer` on a built layer (Keras locks a built layer's state; enable_lora unlocks too)."""
    parent._tracker.unlock()
    try:
        setattr(parent, name, sublayer)
    finally:
        parent._tracker.lock()


def _detach(parent, name):
    parent._tracker.untrack(getattr(parent, name))
    _untrack_for_saving(parent, name)
    object.__setattr__(parent, name, None)


def _untrack_for_saving(parent, name):
    """Forget `name` in TensorFlow's object graph too (Keras' tracker is separate): else SavedModels and
    checkpoints still hold the removed weights."""
    if hasattr(parent, "_delete_tracking"):
        parent._delete_tracking(name)


@contextlib.contextmanager
def _name_scope(path):
    """Keras name scopes for each part of `path`, so new weights get paths under the layer they adapt."""
    with contextlib.ExitStack() as stack:
        for part in path.split("/"):
            stack.enter_context(keras.name_scope(part))
        yield
