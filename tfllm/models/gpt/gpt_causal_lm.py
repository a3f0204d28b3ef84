"""GPT with a causal language-modelling head tied to the token embedding."""

import keras

from tfllm.layers import zero_key_value_cache
from tfllm.models.causal_lm import CausalLM
from tfllm.models.gpt.gpt_backbone import Gpt


@keras.saving.register_keras_serializable(package="tfllm")
class GptCausalLM(CausalLM):
    """Next-token logits from a `Gpt` backbone; the output projection is the token embedding (tied).

    `call` gives float32 logits [B, T, V] for training. `call_with_cache`
    runs the same network one chunk at a time with a key/value cache, for
    incremental decoding; `generate` (from `CausalLM`) decodes with it.
    """

    pretrained_task = "gpt_causal_lm"
    backbone_class = Gpt

    def init_cache(self, batch_size, max_length):
        """A zero cache: per layer a (keys, values) pair, each [B, max_length, num_heads, head_dim]."""
        b = self.backbone
        return zero_key_value_cache(b.num_layers, batch_size, max_length, b.num_heads, b.hidden_dim // b.num_heads,
                                    b.token_embedding.compute_dtype)

    def call_blocks_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
        """The final-normed hidden states [B, T, D] of `token_ids` at cache_update_index..+T, and the new cache."""
        b = self.backbone
        x = b.embeddings(token_ids, start_index=cache_update_index)
        layer_caches = []
        for block, layer_cache in zip(b.decoder_blocks, cache):
            x, layer_cache = block(
                x,
                decoder_padding_mask=padding_mask,
                self_attention_cache=layer_cache,
                self_attention_cache_update_index=cache_update_index,
            )
            layer_caches.append(layer_cache)
        return b.final_norm(x), tuple(layer_caches)
