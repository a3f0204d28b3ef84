"""The GPT decoder-only Transformer: embeddings, pre-LN causal blocks, final LayerNorm."""

import keras

from tfllm.layers import TransformerDecoderBlock
from tfllm.layers import TransformerEmbedding
from tfllm.models.gpt.gpt_presets import GPT_PRESETS
from tfllm.models.presets import PresetMixin
from tfllm.models.pretrained import PretrainedMixin


@keras.saving.register_keras_serializable(package="tfllm")
class Gpt(PresetMixin, PretrainedMixin, keras.Model):
    """GPT-2-style backbone.

    Inputs: a dict with `token_ids` (int32 [B, T]) and `padding_mask` (bool
    [B, T]). Output: the final hidden states [B, T, D] (after the final
    LayerNorm). Every position attends only to itself and earlier positions.

    Example:
    >>> gpt = Gpt.from_preset("gpt_nano")
    >>> hidden = gpt({"token_ids": ids, "padding_mask": mask})
    """

    presets = GPT_PRESETS
    pretrained_task = "gpt"

    def __init__(
        self,
        vocabulary_size,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        dropout=0.1,
        max_sequence_length=1024,
        position_embedding="learned",
        activation="gelu_approximate",
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        dtype=None,
        **kwargs,
    ):
        init = keras.initializers.RandomNormal(stddev=initializer_range)
        embedding = TransformerEmbedding(
            vocabulary_size, hidden_dim, max_sequence_length, num_segments=0,
            position_embedding=position_embedding, layer_norm=False, dropout=dropout,
            initializer_range=initializer_range, dtype=dtype, name="embeddings",
        )
        blocks = [
            TransformerDecoderBlock(
                num_heads, intermediate_dim, dropout=dropout, activation=activation,
                layer_norm_epsilon=layer_norm_epsilon, normalize_first=True,
                kernel_initializer=init, dtype=dtype, name=f"decoder_layer_{i}",
            )
            for i in range(num_layers)
        ]
        final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
        )

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        x = embedding(token_ids)
        for block in blocks:
            x = block(x, decoder_padding_mask=padding_mask)
        x = final_norm(x)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=x,
            dtype=dtype,
            **kwargs,
        )
        self.embeddings = embedding
        self.decoder_blocks = blocks
        self.final_norm = final_norm
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.position_embedding = position_embedding
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range

    @property
    def token_embedding(self):
        return self.embeddings.token_embedding

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "max_sequence_length": self.max_sequence_length,
            "position_embedding": self.position_embedding,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
