"""GPT with a causal language-modelling head tied to the token embedding."""

import keras
from keras import ops

from tfllm.models.gpt.gpt_backbone import Gpt


@keras.saving.register_keras_serializable(package="tfllm")
class GptCausalLM(keras.Model):
    """Next-token logits from a `Gpt` backbone; the output projection is the token embedding (tied).

    `call` gives float32 logits [B, T, V] for training. `call_with_cache`
    runs the same network one chunk at a time with a key/value cache, for
    incremental decoding.
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        hidden = backbone(inputs)
        logits = backbone.token_embedding(hidden, reverse=True)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def init_cache(self, batch_size, max_length):
        """A zero cache [B, num_layers, 2, max_length, num_heads, head_dim]."""
        b = self.backbone
        shape = (batch_size, b.num_layers, 2, max_length, b.num_heads, b.hidden_dim // b.num_heads)
        return ops.zeros(shape, dtype=self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
        """Logits for `token_ids` [B, T] placed at positions cache_update_index..+T.

        `padding_mask` [B, max_length] marks which cache positions hold real
        tokens (for left-padded prompts); by default all are real. Returns
        `(logits, hidden_states, updated_cache)`.
        """
        b = self.backbone
        x = b.embeddings(token_ids, start_index=cache_update_index)
        layer_caches = []
        for i, block in enumerate(b.decoder_blocks):
            x, layer_cache = block(
                x,
                decoder_padding_mask=padding_mask,
                self_attention_cache=cache[:, i],
                self_attention_cache_update_index=cache_update_index,
            )
            layer_caches.append(layer_cache)
        hidden = b.final_norm(x)
        logits = ops.cast(b.token_embedding(hidden, reverse=True), "float32")
        return logits, hidden, ops.stack(layer_caches, axis=1)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
