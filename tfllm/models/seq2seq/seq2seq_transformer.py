"""The encoder-decoder Transformer (Vaswani et al., 2017) for translation and other text-to-text tasks."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm import generation
from tfllm.errors import ConfigError
from tfllm.layers import TransformerDecoderBlock
from tfllm.layers import TransformerEmbedding
from tfllm.layers import TransformerEncoderBlock
from tfllm.layers import zero_key_value_cache
from tfllm.models.presets import PresetMixin
from tfllm.models.pretrained import PretrainedMixin
from tfllm.models.seq2seq.seq2seq_presets import SEQ2SEQ_PRESETS


@keras.saving.register_keras_serializable(package="tfllm")
class Seq2SeqTransformer(PresetMixin, PretrainedMixin, keras.Model):
    """Encoder + decoder stacks with cross-attention, and next-token logits over the target vocabulary.

    Inputs: a dict with `encoder_token_ids`, `encoder_padding_mask`,
    `decoder_token_ids` and `decoder_padding_mask` (int32 / bool, [B, S] and
    [B, T]). Output: float32 logits [B, T, V]; position t predicts decoder
    token t + 1 (teacher forcing: decoder input = [BOS] + target, labels =
    target + [EOS]). `generate` decodes greedily or with beam search, with a
    key/value cache for the decoder's self-attention and the cross-attention
    keys/values computed once per source.

    Args:
        vocabulary_size: source vocabulary (and target, if `share_embeddings`).
        target_vocabulary_size: target vocabulary if different (needs
            `share_embeddings=False`).
        num_encoder_layers, num_decoder_layers: block counts.
        num_heads, hidden_dim, intermediate_dim: attention heads, width,
            feed-forward width.
        dropout: residual, attention and embedding dropout.
        max_sequence_length: longest source or target (learned positions).
        position_embedding: "learned" or "sinusoidal".
        share_embeddings: one token (and position) embedding for source and
            target (a shared subword vocabulary).
        tie_output_embeddings: the output projection is the target token
            embedding (transposed); else a separate Dense layer.
        normalize_first: pre-LN blocks with a final LayerNorm on each stack
            (trains stably without a long warmup); False is the paper's post-LN.

    Example:
    >>> model = Seq2SeqTransformer.from_preset("transformer_tiny")
    >>> model.generate([[5, 6, 7]], bos_id=2, eos_id=3, max_new_tokens=8, num_beams=2)
    """

    presets = SEQ2SEQ_PRESETS
    pretrained_task = "seq2seq"

    def __init__(
        self,
        vocabulary_size,
        target_vocabulary_size=None,
        num_encoder_layers=6,
        num_decoder_layers=6,
        num_heads=8,
        hidden_dim=512,
        intermediate_dim=2048,
        dropout=0.1,
        max_sequence_length=256,
        position_embedding="learned",
        share_embeddings=True,
        tie_output_embeddings=True,
        activation="relu",
        normalize_first=True,
        layer_norm_epsilon=1e-6,
        initializer_range=0.02,
        dtype=None,
        **kwargs,
    ):
        target_vocabulary_size = target_vocabulary_size or vocabulary_size
        if share_embeddings and target_vocabulary_size != vocabulary_size:
            raise ConfigError(
                f"share_embeddings=True needs one vocabulary; got vocabulary_size={vocabulary_size} "
                f"and target_vocabulary_size={target_vocabulary_size}"
            )

        def embedding(vocab, name):
            return TransformerEmbedding(
                vocab, hidden_dim, max_sequence_length, num_segments=0,
                position_embedding=position_embedding, layer_norm=False, dropout=dropout,
                initializer_range=initializer_range, dtype=dtype, name=name,
            )

        def final_norm(name):
            return keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype, name=name) \
                if normalize_first else None

        block_args = dict(
            dropout=dropout, activation=activation, layer_norm_epsilon=layer_norm_epsilon,
            normalize_first=normalize_first,
            kernel_initializer=keras.initializers.RandomNormal(stddev=initializer_range), dtype=dtype,
        )
        source_embedding = embedding(vocabulary_size, "embeddings" if share_embeddings else "source_embeddings")
        target_embedding = source_embedding if share_embeddings else embedding(
            target_vocabulary_size, "target_embeddings")
        encoder_blocks = [TransformerEncoderBlock(num_heads, intermediate_dim, name=f"encoder_layer_{i}",
                                                  **block_args) for i in range(num_encoder_layers)]
        decoder_blocks = [TransformerDecoderBlock(num_heads, intermediate_dim, name=f"decoder_layer_{i}",
                                                  **block_args) for i in range(num_decoder_layers)]
        encoder_norm, decoder_norm = final_norm("encoder_layer_norm"), final_norm("decoder_layer_norm")
        output_projection = None if tie_output_embeddings else keras.layers.Dense(
            target_vocabulary_size, kernel_initializer=keras.initializers.RandomNormal(stddev=initializer_range),
            dtype=dtype, name="output_projection",
        )

        inputs = {
            "encoder_token_ids": keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids"),
            "encoder_padding_mask": keras.Input(shape=(None,), dtype="bool", name="encoder_padding_mask"),
            "decoder_token_ids": keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids"),
            "decoder_padding_mask": keras.Input(shape=(None,), dtype="bool", name="decoder_padding_mask"),
        }
        x = source_embedding(inputs["encoder_token_ids"])
        for block in encoder_blocks:
            x = block(x, padding_mask=inputs["encoder_padding_mask"])
        encoded = encoder_norm(x) if encoder_norm is not None else x
        y = target_embedding(inputs["decoder_token_ids"])
        for block in decoder_blocks:
            y = block(y, encoded, decoder_padding_mask=inputs["decoder_padding_mask"],
                      encoder_padding_mask=inputs["encoder_padding_mask"])
        y = decoder_norm(y) if decoder_norm is not None else y
        logits = output_projection(y) if output_projection is not None else \
            target_embedding.token_embedding(y, reverse=True)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

        self.source_embedding = source_embedding
        self.target_embedding = target_embedding
        self.encoder_blocks = encoder_blocks
        self.decoder_blocks = decoder_blocks
        self.encoder_norm = encoder_norm
        self.decoder_norm = decoder_norm
        self.output_projection = output_projection
        self.vocabulary_size = vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.position_embedding = position_embedding
        self.share_embeddings = share_embeddings
        self.tie_output_embeddings = tie_output_embeddings
        self.activation = activation
        self.normalize_first = normalize_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        # Traced decoding loops by settings; set past TF's attribute tracking so
        # SavedModel export does not try to save them.
        object.__setattr__(self, "_decoders", {})

    # ---- Incremental decoding ------------------------------------------------

    def encode(self, token_ids, padding_mask):
        """The encoder output [B, S, D] (inference: no dropout)."""
        x = self.source_embedding(token_ids)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=padding_mask)
        return self.encoder_norm(x) if self.encoder_norm is not None else x

    def cross_attention_cache(self, encoded):
        """Every decoder layer's cross-attention (keys, values) pair, each [B, S, N, H], computed once."""
        return tuple(block.compute_cross_attention_cache(encoded) for block in self.decoder_blocks)

    def init_cache(self, batch_size, max_length):
        """A zero self-attention cache: per decoder layer a (keys, values) pair, each [B, max_length, N, H]."""
        return zero_key_value_cache(self.num_decoder_layers, batch_size, max_length, self.num_heads,
                                    self.hidden_dim // self.num_heads, self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, cross_attention_cache, encoder_padding_mask):
        """Logits for decoder tokens [B, T] at positions cache_update_index..+T.

        Returns `(logits, hidden_states, updated_cache)`; equal to `call` on the
        whole prefix (tested to 1e-5).
        """
        y = self.target_embedding(token_ids, start_index=cache_update_index)
        caches = []
        for block, layer_cache, cross_cache in zip(self.decoder_blocks, cache, cross_attention_cache):
            y, layer_cache = block(
                y, encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=layer_cache, self_attention_cache_update_index=cache_update_index,
                cross_attention_cache=cross_cache,
            )
            caches.append(layer_cache)
        hidden = self.decoder_norm(y) if self.decoder_norm is not None else y
        logits = self.output_projection(hidden) if self.output_projection is not None else \
            self.target_embedding.token_embedding(hidden, reverse=True)
        return ops.cast(logits, "float32"), hidden, tuple(caches)

    def _decode(self, source, source_mask, max_length, bos_id, eos_id, sampler):
        """Traced: `sampler`'s target [B, max_length] per source (position 0 is BOS).

        `sampler` is any `tfllm.generation` sampler (greedy, `BeamSearch`, ...).
        """
        beams = getattr(sampler, "num_beams", 1)
        encoded = self.encode(source, source_mask)
        source_mask = generation.tile_beams(source_mask, beams)
        cross_cache = self.cross_attention_cache(generation.tile_beams(encoded, beams))
        batch_size = tf.shape(source)[0]
        prompt = tf.pad(tf.fill([batch_size, 1], tf.constant(bos_id, tf.int32)), [[0, 0], [0, max_length - 1]],
                        constant_values=generation.pad_id_for([eos_id]))
        prompt_mask = tf.pad(tf.ones([batch_size, 1], tf.bool), [[0, 0], [0, max_length - 1]])

        def next_fn(tokens, cache, index):
            # A slice of static size 1 (as GPT's `_next`), not `tokens[:, index - 1:index]`:
            # under XLA that strided slice is [B, <=max_length] (a bounded dynamic
            # length), and the cache update then writes the whole padded bound at
            # position 0 (tools/repro/xla_strided_slice_update.py).
            token = ops.slice(tokens, [0, index - 1], [ops.shape(tokens)[0], 1])
            logits, hidden, cache = self.call_with_cache(token, cache, index - 1, cross_cache, source_mask)
            return logits[:, 0], hidden[:, 0], cache

        return sampler(next_fn, prompt, cache=self.init_cache(batch_size, max_length), index=1,
                       mask=prompt_mask, stop_token_ids=(eos_id,))

    def generate(self, source_ids, bos_id, eos_id, max_new_tokens=None, num_beams=1, length_penalty=0.6,
                 jit_compile=False, return_scores=False):
        """Translate token-id sequences; returns the target ids of each (without BOS/EOS).

        Args:
            source_ids: a list of token-id lists (lengths may differ), or an
                int array [B, S] with 0 as padding.
            bos_id, eos_id: the target start and end tokens.
            max_new_tokens: at most this many target tokens (default: twice
                the padded source length + 10, within `max_sequence_length`).
            num_beams: 1 is greedy search (keras-hub's `GreedySampler`), more
                is `tfllm.generation.BeamSearch`.
            length_penalty: GNMT alpha (beam search only matters; 0 = none).
            jit_compile: compile the decoding loop with XLA (same tokens,
                tested; the first call per shape pays the compilation).
            return_scores: also return each output's beam score
                (log-probability / length penalty; beam search only).
        The loop is one `tf.function` per (batch, source length, beams,
        penalty) shape: batches are padded to a multiple of 8 in the source
        length to limit retracing.
        """
        if isinstance(source_ids, np.ndarray):
            source = source_ids.astype("int32")
        else:
            rows = [list(np.asarray(s).tolist()) for s in source_ids]
            if not rows or min(len(r) for r in rows) < 1:
                raise ValueError("generate() needs at least one non-empty source")
            width = -(-max(len(r) for r in rows) // 8) * 8
            source = np.zeros((len(rows), width), "int32")
            for i, row in enumerate(rows):
                source[i, : len(row)] = row
        if source.shape[1] > self.max_sequence_length:
            raise ValueError(f"source length {source.shape[1]} exceeds max_sequence_length "
                             f"{self.max_sequence_length}")
        if max_new_tokens is None:
            max_new_tokens = 2 * source.shape[1] + 10
        max_length = min(max_new_tokens + 1, self.max_sequence_length)
        key = (max_length, bos_id, eos_id, num_beams, float(length_penalty), jit_compile)
        if key not in self._decoders:
            beam = num_beams > 1
            sampler = generation.BeamSearch(num_beams, length_penalty, return_scores=True) if beam \
                else generation.make_sampler(temperature=0)
            self._decoders[key] = tf.function(  # autograph=False: the loop is an explicit while_loop
                lambda s, m: self._decode(s, m, max_length, bos_id, eos_id, sampler), jit_compile=jit_compile,
                autograph=False)
        result = self._decoders[key](tf.constant(source), tf.constant(source != 0))
        tokens, scores = result if isinstance(result, tuple) else (result, None)
        outputs = []
        for row in tokens.numpy()[:, 1:].tolist():
            outputs.append(row[: row.index(eos_id)] if eos_id in row else row)
        if return_scores:
            return outputs, None if scores is None else scores.numpy().tolist()
        return outputs

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "max_sequence_length": self.max_sequence_length,
            "position_embedding": self.position_embedding,
            "share_embeddings": self.share_embeddings,
            "tie_output_embeddings": self.tie_output_embeddings,
            "activation": self.activation,
            "normalize_first": self.normalize_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
