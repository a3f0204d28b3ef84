"""Llama (Mistral, Qwen2) with a causal language-modelling head: tied or its own output matrix."""

import keras

from tfllm.layers import zero_key_value_cache
from tfllm.models.causal_lm import CausalLM
from tfllm.models.llama.llama_backbone import Llama


@keras.saving.register_keras_serializable(package="tfllm")
class LlamaCausalLM(CausalLM):
    """Next-token logits from a `Llama` backbone, and `generate` (shared with GPT, from `CausalLM`).

    The output projection is the backbone's `token_embedding` reversed: the
    embedding itself when `tie_word_embeddings`, else its own matrix
    (Hugging Face's `lm_head`). The key/value cache holds only the
    `num_key_value_heads` heads of grouped-query attention.

    Example:
    >>> lm = LlamaCausalLM.from_pretrained("SmolLM-135M/")   # a Hugging Face folder (or hf://...)
    >>> lm.generate("Once upon a time", max_new_tokens=20, temperature=0)   # with the folder's tokenizer
    >>> lm.generate([[1, 504, 3458]], max_new_tokens=20, temperature=0)    # or token ids
    """

    pretrained_task = "llama_causal_lm"
    backbone_class = Llama

    def init_cache(self, batch_size, max_length):
        """A zero cache: per layer a (keys, values) pair, each [B, max_length, num_key_value_heads, head_dim]."""
        b = self.backbone
        return zero_key_value_cache(b.num_layers, batch_size, max_length, b.num_key_value_heads, b.head_dim,
                                    b.token_embedding.compute_dtype)

    def call_blocks_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
        """The final-normed hidden states [B, T, D] of `token_ids` at cache_update_index..+T, and the new cache."""
        b = self.backbone
        x = b.token_embedding(token_ids)
        layer_caches = []
        for block, layer_cache in zip(b.decoder_blocks, cache):
            x, layer_cache = block(x, padding_mask=padding_mask, cache=layer_cache,
                                   cache_update_index=cache_update_index)
            layer_caches.append(layer_cache)
        return b.final_norm(x), tuple(layer_caches)
