"""Hugging Face Llama, Mistral and Qwen2 (`*ForCausalLM`, `*Model`) -> tfllm `Llama` / `LlamaCausalLM`.

One converter for the three: they share the layout (`model.embed_tokens`,
`model.layers.{i}.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`,
`input_layernorm`, `post_attention_layernorm`, `model.norm`, `lm_head`)
and differ in config: Qwen2 always has query/key/value biases, Mistral
and Qwen2 may attend within a sliding window. `torch.nn.Linear` weights
are [out, in], so every kernel is transposed. Both config spellings of
RoPE are read: transformers 5's `rope_parameters` and the older
`rope_theta` + `rope_scaling`.
"""

import re

from tfllm.convert import config_fields as fields
from tfllm.convert.errors import ConversionError
from tfllm.convert.hf_bert import check_tied
from tfllm.layers.rotary_embedding import ROPE_TYPES
from tfllm.layers.rotary_embedding import rope_type

MODEL_TYPES = ("llama", "mistral", "qwen2")
# The fields each rope type needs besides rope_theta.
ROPE_FIELDS = {"default": (), "linear": ("factor",),
               "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def _rope(config, source, refuse):
    """(rope_theta, rope_scaling or None) from `rope_parameters` or `rope_theta`/`rope_scaling`."""
    field = "rope_parameters" if config.get("rope_parameters") else "rope_scaling"
    params = dict(config.get(field) or {})
    theta = params.pop("rope_theta", config.get("rope_theta", 10000.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 0:
        raise ConversionError(f"{source}: rope_theta={theta!r} is not valid (expected a positive number)")
    kind = rope_type(params)
    if kind not in ROPE_TYPES:
        refuse(field, f"rope_type {kind!r}; supported: {', '.join(ROPE_TYPES)}")
    if params.get("partial_rotary_factor", 1.0) != 1.0 or config.get("partial_rotary_factor", 1.0) != 1.0:
        refuse(field if "partial_rotary_factor" in params else "partial_rotary_factor",
               "RoPE rotates the whole head")
    missing = [f for f in ROPE_FIELDS[kind] if not isinstance(params.get(f), (int, float))]
    if missing:
        refuse(field, f"rope_type {kind!r} needs {', '.join(missing)}")
    if kind == "default":
        return float(theta), None
    return float(theta), {"rope_type": kind, **{f: float(params[f]) for f in ROPE_FIELDS[kind]}}


def _sliding_window(config, model_type, num_layers, source, refuse):
    """(sliding_window or None, layer_types or None) as transformers 5 decides them for this model type."""
    if model_type == "llama" or (model_type == "qwen2" and not config.get("use_sliding_window")):
        return None, None
    window = config.get("sliding_window")
    if window is None:
        return None, None
    window = fields.size(config, "sliding_window", source)
    layer_types = config.get("layer_types")
    if layer_types is None and model_type == "qwen2":  # older configs: no layer_types yet
        first = int(config.get("max_window_layers", num_layers))
        layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(num_layers)]
    if layer_types is not None:
        if (not isinstance(layer_types, list) or len(layer_types) != num_layers
                or set(layer_types) - {"full_attention", "sliding_attention"}):
            refuse("layer_types", f"expected {num_layers} of 'full_attention' / 'sliding_attention'")
        if "sliding_attention" not in layer_types:
            return None, None
    return window, layer_types


def llama_config_from_hf(config, source="config.json"):
    """tfllm `Llama` kwargs for a HF Llama / Mistral / Qwen2 config dict; refuses (naming the field) the rest."""
    def refuse(field, why):
        raise ConversionError(f"{source}: {field}={config.get(field)!r} is not supported by tfllm ({why})")

    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        refuse("model_type", f"a Llama loads from model_type {', '.join(MODEL_TYPES)}")
    if config.get("hidden_act", "silu") != "silu":
        refuse("hidden_act", "the gated MLP uses silu")
    if config.get("mlp_bias"):
        refuse("mlp_bias", "the gated MLP has no biases")
    if config.get("quantization_config"):
        refuse("quantization_config", "load a float checkpoint")
    hidden = fields.size(config, "hidden_size", source)
    heads = fields.size(config, "num_attention_heads", source)
    kv_heads = fields.size(config, "num_key_value_heads", source, heads)
    if heads % kv_heads:
        raise ConversionError(f"{source}: num_key_value_heads={kv_heads} does not divide num_attention_heads={heads}")
    head_dim = config.get("head_dim")
    if head_dim is None:
        fields.heads_divide(hidden, heads, "hidden_size", "num_attention_heads", source)
        head_dim = hidden // heads
    else:
        head_dim = fields.size(config, "head_dim", source)
    if head_dim % 2:
        refuse("head_dim", "RoPE rotates pairs: the head size must be even")
    num_layers = fields.size(config, "num_hidden_layers", source)
    theta, scaling = _rope(config, source, refuse)
    window, layer_types = _sliding_window(config, model_type, num_layers, source, refuse)
    attention_bias = bool(config.get("attention_bias", False))
    return dict(
        vocabulary_size=fields.size(config, "vocab_size", source),
        num_layers=num_layers,
        num_heads=heads,
        num_key_value_heads=kv_heads,
        hidden_dim=hidden,
        intermediate_dim=fields.size(config, "intermediate_size", source),
        head_dim=head_dim,
        max_sequence_length=fields.size(config, "max_position_embeddings", source, 2048),
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_epsilon=fields.positive(config, "rms_norm_eps", source, 1e-6),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2" or attention_bias,
        output_bias=model_type != "qwen2" and attention_bias,
        sliding_window=window,
        layer_types=layer_types,
        dropout=fields.probability(config, "attention_dropout", source, 0.0),
        initializer_range=fields.positive(config, "initializer_range", source, 0.02),
    )


def normalize_names(tensors):
    """Strip the "model." prefix of *ForCausalLM (the bare *Model has none); `lm_head.weight` keeps its name."""
    return {n[len("model."):] if n.startswith("model.") else n: v for n, v in tensors.items()}


def _projection(porter, layer, name, kernel_shape):
    porter.assign(layer.kernel, porter.take(f"{name}.weight").T.reshape(kernel_shape))
    if layer.bias is not None:
        porter.assign(layer.bias, porter.take(f"{name}.bias").reshape(layer.bias.shape))


def port_backbone(porter, llama):
    """embed_tokens, layers.{i}.*, norm, lm_head -> a tfllm `Llama`."""
    for name in porter.tensors:  # RoPE buffers that older checkpoints stored
        if re.fullmatch(r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq", name):
            porter.ignore(name, "RoPE frequencies are computed from the config")
    embedding = llama.token_embedding
    embed = porter.take("embed_tokens.weight")
    porter.assign(embedding.embeddings, embed)
    if llama.tie_word_embeddings:
        check_tied(porter, "lm_head.weight", embed, "embed_tokens.weight")
    elif porter.has("lm_head.weight"):
        porter.assign(embedding.reverse_embeddings, porter.take("lm_head.weight").T)
    else:
        raise ConversionError(f"{porter.source}: missing weight 'lm_head.weight' (tie_word_embeddings is false; "
                              "a bare *Model checkpoint has no LM head)")
    hidden, heads, kv_heads, head_dim = llama.hidden_dim, llama.num_heads, llama.num_key_value_heads, llama.head_dim
    for i, block in enumerate(llama.decoder_blocks):
        p = f"layers.{i}"
        attention = block.self_attention
        porter.assign(block.attention_norm.scale, porter.take(f"{p}.input_layernorm.weight"))
        _projection(porter, attention.query_dense, f"{p}.self_attn.q_proj", (hidden, heads, head_dim))
        _projection(porter, attention.key_dense, f"{p}.self_attn.k_proj", (hidden, kv_heads, head_dim))
        _projection(porter, attention.value_dense, f"{p}.self_attn.v_proj", (hidden, kv_heads, head_dim))
        _projection(porter, attention.output_dense, f"{p}.self_attn.o_proj", (heads, head_dim, hidden))
        porter.assign(block.feed_forward_norm.scale, porter.take(f"{p}.post_attention_layernorm.weight"))
        mlp = block.feed_forward
        for layer, name in ((mlp.gate_dense, "gate_proj"), (mlp.intermediate_dense, "up_proj"),
                            (mlp.output_dense, "down_proj")):
            porter.assign(layer.kernel, porter.take(f"{p}.mlp.{name}.weight").T)
    porter.assign(llama.final_norm.scale, porter.take("norm.weight"))
