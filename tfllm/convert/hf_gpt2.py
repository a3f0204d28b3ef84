"""Hugging Face GPT-2 (`GPT2Model`, `GPT2LMHeadModel`) -> tfllm `Gpt` / `GptCausalLM`.

GPT-2 uses `Conv1D` layers whose weights are already [in, out] (no
transpose), and one fused `c_attn` [D, 3D] for query, key and value, split
here. Blocks are pre-LN: `ln_1` is our `self_attention_layer_norm`, `ln_2`
our `feed_forward_layer_norm`, `ln_f` the `final_layer_norm`.
"""

import re

from tfllm.convert import config_fields as fields
from tfllm.convert.errors import ConversionError
from tfllm.convert.hf_bert import check_tied

ACTIVATIONS = {"gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate", "gelu": "gelu",
               "relu": "relu"}


def gpt_config_from_hf(config, source="config.json"):
    """tfllm `Gpt` kwargs for a HF GPT-2 config dict; refuses (naming the field) what tfllm cannot represent.

    Sizes must be positive integers and dropout rates in [0, 1); a bad or
    missing value is a `ConversionError` naming `source` and the field.
    """
    def refuse(field, why):
        raise ConversionError(f"{source}: {field}={config.get(field)!r} is not supported by tfllm ({why})")

    if config.get("model_type", "gpt2") != "gpt2":
        refuse("model_type", "only model_type 'gpt2' loads as Gpt")
    if config.get("activation_function", "gelu_new") not in ACTIVATIONS:
        refuse("activation_function", f"supported: {', '.join(ACTIVATIONS)}")
    if config.get("scale_attn_by_inverse_layer_idx"):
        refuse("scale_attn_by_inverse_layer_idx", "attention is scaled by 1/sqrt(head_dim) only")
    if not config.get("scale_attn_weights", True):
        refuse("scale_attn_weights", "attention is always scaled by 1/sqrt(head_dim)")
    if config.get("add_cross_attention"):
        refuse("add_cross_attention", "decoder-only GPT has no cross-attention")
    if not config.get("tie_word_embeddings", True):
        refuse("tie_word_embeddings", "the LM head is tied to the token embedding")
    hidden = fields.size(config, "n_embd", source)
    heads = fields.size(config, "n_head", source)
    fields.heads_divide(hidden, heads, "n_embd", "n_head", source)
    positions = "n_positions" if "n_positions" in config else "n_ctx"
    return dict(
        vocabulary_size=fields.size(config, "vocab_size", source),
        num_layers=fields.size(config, "n_layer", source),
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=4 * hidden if config.get("n_inner") is None else fields.size(config, "n_inner", source),
        dropout=fields.probability(config, "resid_pdrop", source, 0.1),
        max_sequence_length=fields.size(config, positions, source, 1024),
        activation=ACTIVATIONS[config.get("activation_function", "gelu_new")],
        layer_norm_epsilon=fields.positive(config, "layer_norm_epsilon", source, 1e-5),
        initializer_range=fields.positive(config, "initializer_range", source, 0.02),
    )


def normalize_names(tensors):
    """Strip the "transformer." prefix of GPT2LMHeadModel (GPT2Model has none)."""
    return {n[len("transformer."):] if n.startswith("transformer.") else n: v for n, v in tensors.items()}


def _layer_norm(porter, layer, name):
    porter.assign(layer.gamma, porter.take(f"{name}.weight"))
    porter.assign(layer.beta, porter.take(f"{name}.bias"))


def port_backbone(porter, gpt):
    """wte, wpe, h.{i}.*, ln_f -> a tfllm `Gpt`; checks a stored `lm_head.weight` is the tied wte."""
    for name in porter.tensors:  # causal-mask buffers that old checkpoints stored
        if re.fullmatch(r"h\.\d+\.attn\.(bias|masked_bias)", name):
            porter.ignore(name, "attention mask buffer")
    wte = porter.take("wte.weight")
    porter.assign(gpt.embeddings.token_embedding.embeddings, wte)
    check_tied(porter, "lm_head.weight", wte, "wte.weight")
    porter.assign(gpt.embeddings.position_layer.position_embeddings, porter.take("wpe.weight"))
    heads = gpt.num_heads
    for i, block in enumerate(gpt.decoder_blocks):
        p = f"h.{i}"
        _layer_norm(porter, block.self_attention_layer_norm, f"{p}.ln_1")
        attention = block.self_attention
        w = porter.take(f"{p}.attn.c_attn.weight")  # [D, 3D]: query | key | value
        b = porter.take(f"{p}.attn.c_attn.bias")
        hidden = w.shape[0]
        if w.shape != (hidden, 3 * hidden):
            raise ConversionError(f"{porter.source}: {p}.attn.c_attn.weight has shape {w.shape}, "
                                  f"expected ({hidden}, {3 * hidden})")
        for k, layer in enumerate((attention.query_dense, attention.key_dense, attention.value_dense)):
            cols = slice(k * hidden, (k + 1) * hidden)
            porter.assign(layer.kernel, w[:, cols].reshape(hidden, heads, -1))
            porter.assign(layer.bias, b[cols].reshape(heads, -1))
        w = porter.take(f"{p}.attn.c_proj.weight")  # [N*H, D]
        porter.assign(attention.output_dense.kernel, w.reshape(heads, -1, hidden))
        porter.assign(attention.output_dense.bias, porter.take(f"{p}.attn.c_proj.bias"))
        _layer_norm(porter, block.feed_forward_layer_norm, f"{p}.ln_2")
        ff = block.feed_forward
        porter.assign(ff.intermediate_dense.kernel, porter.take(f"{p}.mlp.c_fc.weight"))
        porter.assign(ff.intermediate_dense.bias, porter.take(f"{p}.mlp.c_fc.bias"))
        porter.assign(ff.output_dense.kernel, porter.take(f"{p}.mlp.c_proj.weight"))
        porter.assign(ff.output_dense.bias, porter.take(f"{p}.mlp.c_proj.bias"))
    _layer_norm(porter, gpt.final_norm, "ln_f")
