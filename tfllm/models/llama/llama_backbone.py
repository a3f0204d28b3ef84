"""The Llama decoder-only Transformer (also Mistral and Qwen2): token embedding, RMSNorm blocks with RoPE."""

import keras
from keras_hub.layers import ReversibleEmbedding

from tfllm.errors import ConfigError
from tfllm.layers import RMSNorm
from tfllm.models.llama.llama_decoder import LlamaDecoderBlock
from tfllm.models.llama.llama_presets import LLAMA_PRESETS
from tfllm.models.presets import PresetMixin
from tfllm.models.pretrained import PretrainedMixin

LAYER_TYPES = ("full_attention", "sliding_attention")


@keras.saving.register_keras_serializable(package="tfllm")
class Llama(PresetMixin, PretrainedMixin, keras.Model):
    """Llama-style backbone: Llama 2/3, SmolLM, Mistral and Qwen2 checkpoints load into it.

    Inputs: a dict with `token_ids` (int32 [B, T]) and `padding_mask` (bool
    [B, T]). Output: the final hidden states [B, T, D] (after the final
    RMSNorm). No learned positions: RoPE inside every attention.

    Why not keras-hub's `LlamaBackbone` (or its Mistral/Qwen backbones):
    three classes for what here is one with options (grouped-query heads,
    qkv bias, sliding window, tied or untied output), and their attention
    caches keys and values stacked in one tensor (see
    `tfllm.layers.MultiHeadAttention` for why tfllm keeps a pair).

    Args:
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim: sizes.
        num_key_value_heads: key/value heads for grouped-query attention (default num_heads).
        head_dim: per-head size (default hidden_dim // num_heads).
        max_sequence_length: the longest context (`generate` slides its window past it).
        rope_theta, rope_scaling: RoPE settings (`tfllm.layers.rotary_embedding`).
        rms_norm_epsilon: RMSNorm epsilon.
        tie_word_embeddings: the LM head reuses the token embedding (else its own matrix).
        qkv_bias, output_bias: biases on the query/key/value and the attention output projections.
        sliding_window: attend only to the last this many positions (None: all).
        layer_types: per layer "full_attention" or "sliding_attention" (None: all
            sliding when `sliding_window` is set; Qwen2 mixes them).
        dropout: residual and attention dropout (0 for published models).

    Example:
    >>> llama = Llama.from_preset("llama_nano")
    >>> hidden = llama({"token_ids": ids, "padding_mask": mask})
    """

    presets = LLAMA_PRESETS
    pretrained_task = "llama"

    def __init__(self, vocabulary_size, num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128,
                 num_key_value_heads=None, head_dim=None, max_sequence_length=2048, rope_theta=10000.0,
                 rope_scaling=None, rms_norm_epsilon=1e-6, tie_word_embeddings=False, qkv_bias=False,
                 output_bias=False, sliding_window=None, layer_types=None, dropout=0.0, initializer_range=0.02,
                 dtype=None, **kwargs):
        num_key_value_heads = num_key_value_heads or num_heads
        head_dim = head_dim or hidden_dim // num_heads
        layer_types = list(layer_types) if layer_types else None
        if layer_types is not None and (len(layer_types) != num_layers or set(layer_types) - set(LAYER_TYPES)):
            raise ConfigError(f"layer_types must be {num_layers} of {LAYER_TYPES}, got {layer_types}")
        init = keras.initializers.RandomNormal(stddev=initializer_range)
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, embeddings_initializer=init,
            dtype=dtype,
            name="token_embedding")
        blocks = [
            LlamaDecoderBlock(
                num_heads, num_key_value_heads, head_dim, intermediate_dim, rms_norm_epsilon, rope_theta,
                rope_scaling,
                sliding_window if layer_types is None or layer_types[i] == "sliding_attention" else None,
                qkv_bias, output_bias, dropout, init, dtype=dtype, name=f"decoder_layer_{i}")
            for i in range(num_layers)
        ]
        final_norm = RMSNorm(rms_norm_epsilon, dtype=dtype, name="final_layer_norm")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        x = token_embedding(token_ids)
        for block in blocks:
            x = block(x, padding_mask=padding_mask)
        x = final_norm(x)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask}, outputs=x, dtype=dtype,
                         **kwargs)
        self.token_embedding = token_embedding
        self.decoder_blocks = blocks
        self.final_norm = final_norm
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.head_dim = head_dim
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rope_scaling = dict(rope_scaling) if rope_scaling else None
        self.rms_norm_epsilon = rms_norm_epsilon
        self.tie_word_embeddings = tie_word_embeddings
        self.qkv_bias = qkv_bias
        self.output_bias = output_bias
        self.sliding_window = sliding_window
        self.layer_types = layer_types
        self.dropout = dropout
        self.initializer_range = initializer_range

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **{k: getattr(self, k) for k in (
                "vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                "num_key_value_heads", "head_dim", "max_sequence_length", "rope_theta", "rope_scaling",
                "rms_norm_epsilon", "tie_word_embeddings", "qkv_bias", "output_bias", "sliding_window",
                "layer_types", "dropout", "initializer_range")},
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
