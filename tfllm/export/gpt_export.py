"""Export a causal LM (`GptCausalLM`, `LlamaCausalLM`) as a SavedModel: prompt strings in, generated strings out.

Nothing here depends on the family: the loop runs the model's own `_build_cache`
and `_next` (`tfllm.models.causal_lm.CausalLM`), whatever its cache holds.
"""

import tensorflow as tf

from tfllm import generation
from tfllm.errors import ConfigError
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import string_batch_spec
from tfllm.models.causal_lm import weights_dtype
from tfllm.models.weight_casting import DTYPE_ALIASES
from tfllm.models.weight_casting import cast_weights
from tfllm.tokenizers.strings import as_text


class GptGenerationServingModule(tf.Module):
    """Tokenizer + cached decoding loop + detokenizer in one graph.

    Signatures:
        `serving_default`: `prompt` string [batch] -> `generated` string [batch],
            with the export's defaults (max_new_tokens, temperature, top_k, seed).
        `generate`: the same plus scalar inputs `max_new_tokens` (int32, at most
            the exported maximum), `temperature` (float32, 0 = greedy),
            `top_k` (int32, 0 = off) and `seed` (int32).

    Shapes are static inside: prompts are cropped to their last
    `max_length - max_new_tokens` tokens, so every cache buffer is always
    [batch, max_length, key/value heads, head_dim].
    """

    def __init__(self, lm, max_new_tokens=128, temperature=0.0, top_k=0, seed=0, stop_token_ids=(), max_length=None):
        super().__init__()
        if lm.tokenizer is None:
            raise ConfigError(f"the {type(lm).__name__} needs a tokenizer to export string-to-string generation")
        self.lm = lm
        self.tokenizer = lm.tokenizer
        # Prompt + new tokens; the context length by default (set it lower for long-context models such as
        # Llama 3's 131072, whose cache would not fit in memory).
        self.max_length = min(max_length or lm.backbone.max_sequence_length, lm.backbone.max_sequence_length)
        if not 0 < max_new_tokens < self.max_length:
            raise ConfigError(f"max_new_tokens must be in [1, {self.max_length - 1}], got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens
        self.defaults = dict(temperature=float(temperature), top_k=int(top_k), seed=int(seed))
        self.stop_token_ids = tf.constant(list(stop_token_ids) or [-1], tf.int32)

    def _generate(self, prompt, max_new_tokens, temperature, top_k, seed):
        prompt = check_string_batch(prompt, "prompt")
        tf.debugging.assert_less_equal(
            max_new_tokens, self.max_new_tokens,
            message=f"max_new_tokens exceeds the exported maximum {self.max_new_tokens}",
        )
        ids = tf.cast(self.tokenizer(prompt), tf.int32)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        keep = self.max_length - self.max_new_tokens
        lengths = tf.minimum(ids.row_lengths(), keep)
        starts = ids.row_lengths() - lengths  # crop long prompts from the left
        ids = tf.ragged.map_flat_values(tf.identity, ids)
        cropped = tf.RaggedTensor.from_row_lengths(
            tf.gather(ids.flat_values, tf.ragged.range(ids.row_starts() + starts, ids.row_limits()).flat_values),
            lengths,
        )
        tokens = cropped.to_tensor(default_value=0, shape=[None, self.max_length])
        lengths = tf.cast(lengths, tf.int32)
        mask = tf.sequence_mask(lengths, self.max_length)
        cache, index = self.lm._build_cache(tokens, mask)
        index = tf.maximum(index, 1)
        end = tf.minimum(tf.reduce_max(lengths) + max_new_tokens, self.max_length)

        def body(tokens, cache, index):
            logits, _, cache = self.lm._next(tokens, cache, index)
            next_token = generation.sample_with_tensor_options(logits, temperature, top_k, seed, index)
            next_token = tf.where(mask[:, index], tokens[:, index], next_token)
            tokens = tf.tensor_scatter_nd_update(
                tokens, tf.stack([tf.range(tf.shape(tokens)[0]), tf.fill([tf.shape(tokens)[0]], index)], 1),
                next_token,
            )
            return tokens, cache, index + 1

        tokens, _, _ = tf.while_loop(lambda t, c, i: i < end, body, (tokens, cache, index))
        new = tf.RaggedTensor.from_tensor(tokens)
        positions = tf.ragged.range(lengths, tf.minimum(lengths + max_new_tokens, self.max_length))
        new = tf.gather(tokens, positions, batch_dims=1)
        is_stop = tf.reduce_any(tf.equal(new[..., None], self.stop_token_ids), axis=-1)
        before_stop = tf.equal(tf.cumsum(tf.cast(is_stop, tf.int32), axis=1), 0)
        new = tf.ragged.boolean_mask(new, before_stop)
        return {"generated": self.tokenizer.detokenize(new)}

    @tf.function(input_signature=[string_batch_spec("prompt")], autograph=False)
    def serve(self, prompt):
        # A call of `generate`'s function (one traced decoding loop in the SavedModel, not two).
        return self.serve_with_options(prompt, tf.constant(self.max_new_tokens), **{
            k: tf.constant(v) for k, v in self.defaults.items()})

    @tf.function(input_signature=[
        string_batch_spec("prompt"),
        tf.TensorSpec([], tf.int32, name="max_new_tokens"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.int32, name="seed"),
    ], autograph=False)
    def serve_with_options(self, prompt, max_new_tokens, temperature, top_k, seed):
        return self._generate(prompt, max_new_tokens, temperature, top_k, seed)

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        return {
            "serving_default": self.serve,
            "generate": self.serve_with_options,
        }

    def warmup_requests(self):
        # Prompts made of tokens 1..8, so every character is in the vocabulary (char-level models).
        ids = tf.constant([list(range(1, min(9, self.lm.backbone.vocabulary_size)))], tf.int32)
        text = as_text(self.tokenizer.detokenize(ids), errors="ignore")  # a tensor (char) or a list (BPE)
        prompts = [text, text[: len(text) // 2]]
        options = dict(max_new_tokens=self.max_new_tokens, temperature=0.0, top_k=0, seed=0)
        options = {k: tf.constant(v, tf.float32 if k == "temperature" else tf.int32) for k, v in options.items()}
        return [("serving_default", {"prompt": prompts[:1]}), ("serving_default", {"prompt": prompts}),
                ("generate", {"prompt": prompts, **options})]


def export_gpt(lm, export_dir, model_name="gpt", version=1, warmup=True, precision="float32", **options):
    """Write the generation SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path.

    `precision`: "bfloat16" saves the weights (and runs the decoding loop) in
    bfloat16 (`tfllm.models.cast_weights`): half the bytes read per step,
    multiplied by oneDNN's bfloat16 kernels on CPUs with AVX512_BF16 or AMX;
    logits and sampling stay float32. The export runs without XLA, so its
    tokens are those of the in-process `cast_weights(lm).generate(...)`.
    A model whose weights already are `precision` (`export_folder` casts every
    head the same way) is exported as it is.
    `options`: `max_new_tokens`, `temperature`, `top_k`, `seed`, `stop_token_ids`, `max_length` (see the module).
    """
    precision = DTYPE_ALIASES.get(precision, precision)
    if weights_dtype(lm) != precision:
        lm = cast_weights(lm, precision)
    module = GptGenerationServingModule(lm, **options)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
