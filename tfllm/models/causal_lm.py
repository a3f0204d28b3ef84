"""What every decoder-only language model shares: logits with a key/value cache, and `generate`.

A subclass (`GptCausalLM`, `LlamaCausalLM`) builds its functional graph in
`__init__` as any `Task`, and gives two methods: `init_cache(batch_size,
max_length)` (a per-layer tuple of (keys, values) buffers) and
`call_blocks_with_cache(token_ids, cache, cache_update_index,
padding_mask)` (final-normed hidden states and the updated cache). The
logits are the backbone's `token_embedding` reversed (tied, or its own
output matrix), and everything else here (the sampler protocol of
`tfllm.generation`, compiled decoding, the sliding context window, strings
in and out) is the same for every family, so it lives once.
"""

import keras
import numpy as np
from keras import ops

from tfllm import generation
from tfllm.models.task import Task
from tfllm.models.task import as_float32
from tfllm.tokenizers.strings import as_text


def weights_dtype(lm):
    """The dtype `lm`'s backbone keeps its variables in: "float32", or "bfloat16"/"float16" after
    `tfllm.models.cast_weights`."""
    # (a layer's policy: a functional Keras model keeps float32 as its own whatever its layers hold)
    return keras.backend.standardize_dtype(lm.backbone.token_embedding.variable_dtype)


class CausalLM(Task):
    """Base of the causal LM heads: `call_with_cache` and `generate` over a subclass's cached blocks.

    The backbone must have `token_embedding` (a keras-hub
    `ReversibleEmbedding`), `vocabulary_size` and `max_sequence_length`.
    """

    head_args = ()

    def __init__(self, backbone, tokenizer=None, **kwargs):
        inputs = backbone.input
        logits = as_float32(backbone.token_embedding(backbone(inputs), reverse=True))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.tokenizer = tokenizer  # optional: lets generate() take and return strings
        self._decoder = None

    def init_cache(self, batch_size, max_length):
        """A zero cache: per layer a (keys, values) pair, each [B, max_length, heads, head_dim]."""
        raise NotImplementedError

    def call_blocks_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
        """The final-normed hidden states [B, T, D] of `token_ids` at cache_update_index..+T, and the new cache."""
        raise NotImplementedError

    def call_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
        """Logits for `token_ids` [B, T] placed at positions cache_update_index..+T.

        `padding_mask` [B, max_length] marks which cache positions hold real
        tokens (for left-padded prompts); by default all are real. Returns
        `(logits, hidden_states, updated_cache)`.
        """
        hidden, cache = self.call_blocks_with_cache(token_ids, cache, cache_update_index, padding_mask)
        logits = ops.cast(self.backbone.token_embedding(hidden, reverse=True), "float32")
        return logits, hidden, cache

    def _build_cache(self, prompt, mask):
        """Fill a cache from the whole (right-padded) prompt; decoding starts at the shortest prompt's end."""
        cache = self.init_cache(ops.shape(prompt)[0], ops.shape(prompt)[1])
        _, _, cache = self.call_with_cache(prompt, cache, 0)
        return cache, generation.min_prompt_index(mask)

    def _next(self, prompt, cache, index):
        """keras-hub sampler protocol: feed the token at index-1, return logits for position index."""
        token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
        logits, hidden, cache = self.call_with_cache(token, cache, index - 1)
        return logits[:, 0], hidden[:, 0], cache

    def generate(
        self,
        prompts,
        max_new_tokens=64,
        temperature=1.0,
        top_k=None,
        top_p=None,
        num_beams=None,
        seed=None,
        stop_token_ids=None,
        jit_compile=None,
    ):
        """Continue each prompt by up to `max_new_tokens` tokens.

        Args:
            prompts: a string, a list of strings (needs `tokenizer`), or a
                list of token-id lists. Prompts may differ in length.
            temperature: 0 or the default with no other option means greedy.
            top_k, top_p: restrict sampling to the k most likely tokens / the
                smallest set with probability >= p.
            num_beams: beam search with this many beams (> 1).
            seed: makes sampling reproducible.
            stop_token_ids: a row ends before the first of these it emits.
            jit_compile: compile the decoding loop with XLA. By default yes,
                except for half-precision weights (`cast_weights`), which
                XLA's CPU backend would multiply as float32.
        Returns:
            the new tokens per prompt: strings if the prompts were strings,
            else lists of ids.
        """
        single = isinstance(prompts, str)
        strings_in = single or (len(prompts) > 0 and isinstance(prompts[0], str))
        if strings_in:
            if self.tokenizer is None:
                raise ValueError("generate() got strings but this model has no tokenizer; pass token ids")
            prompts = [p.numpy().tolist() if hasattr(p, "numpy") else list(p)
                       for p in self.tokenizer([prompts] if single else list(prompts))]
        prompts = [list(np.asarray(p).tolist()) for p in prompts]
        if jit_compile is None:
            jit_compile = weights_dtype(self) not in ("bfloat16", "float16")
        if top_k is not None:
            top_k = min(top_k, self.backbone.vocabulary_size)  # k past the vocabulary means "all"
        options = dict(temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams, seed=seed)
        new_tokens = self._generate_sliding(prompts, max_new_tokens, options, stop_token_ids, jit_compile)
        if not strings_in:
            return new_tokens
        texts = [self.tokenizer.detokenize(np.array([t], "int32") if t else np.zeros((1, 0), "int32"))
                 for t in new_tokens]
        texts = [as_text(t) for t in texts]
        return texts[0] if single else texts

    def _generate_sliding(self, prompts, max_new_tokens, options, stop_token_ids, jit_compile):
        """Generate in chunks that fit the context window, sliding it when the text outgrows it.

        Within the window every token is decoded with the cache. Once it is
        full, the next chunk's prompt is the most recent `limit - chunk`
        tokens (as nanoGPT crops its context), re-encoded once per chunk of up
        to half the window.
        """
        limit = self.backbone.max_sequence_length
        half = max(1, limit // 2)
        contexts = [list(p) for p in prompts]
        outputs = [[] for _ in prompts]
        done = [False] * len(prompts)
        remaining, chunk_index = max_new_tokens, 0
        while remaining > 0 and not all(done):
            step = min(remaining, limit - max(len(c) for c in contexts))
            if step <= 0:  # the window is full: keep the most recent tokens
                step = min(remaining, half)
                contexts = [c[-(limit - step):] for c in contexts]
            chunk_options = dict(options)
            if options.get("seed") is not None:
                chunk_options["seed"] = options["seed"] + chunk_index
            new = self._generate_chunk(contexts, step, chunk_options, stop_token_ids, jit_compile)
            for row, tokens in enumerate(new):
                if done[row]:
                    continue
                outputs[row].extend(tokens)
                contexts[row].extend(tokens)
                done[row] = len(tokens) < step  # ended by a stop token
            remaining -= step
            chunk_index += 1
        return outputs

    def _generate_chunk(self, prompts, max_new_tokens, options, stop_token_ids, jit_compile):
        ids, mask, lengths = generation.pad_prompts(prompts, max_new_tokens, generation.pad_id_for(stop_token_ids))
        if self._decoder is None:
            self._decoder = {}  # one per jit_compile value, so switching keeps both compiled
        decoders = self._decoder  # (read back: Keras stores a tracked copy of the dict)
        if jit_compile not in decoders:
            decoders[jit_compile] = generation.CompiledDecoder(self._next, self._build_cache, jit_compile)
        tokens = decoders[jit_compile](ids, mask, options, stop_token_ids)
        return generation.cut_generations(tokens, lengths, max_new_tokens, stop_token_ids)

