"""Autoregressive decoding shared by every generative model in tfllm.

Token choice is keras-hub's samplers (greedy, random with temperature,
top-k, top-p, beam search): they are generic over a
`next(prompt, cache, index) -> (logits, hidden, cache)` function, which is
exactly what a model's `call_with_cache` gives, and they run the whole loop
as one `while_loop` that compiles with static shapes. What this module adds
is the part around them: building a sampler from flags, re-seeding without
retracing, right-padding a batch of prompts of different lengths, and
cutting each row at its own budget and stop token.
"""

import keras
import numpy as np
import tensorflow as tf
from keras_hub import samplers


def make_sampler(temperature=1.0, top_k=None, top_p=None, num_beams=None, seed=None):
    """The keras-hub sampler for these options.

    greedy: temperature 0 (or no other option); beam search: num_beams > 1;
    top-p (optionally also restricted to top-k); top-k; else plain sampling
    at `temperature`.
    """
    if num_beams is not None and num_beams > 1:
        return samplers.BeamSampler(num_beams=num_beams)
    if temperature == 0 or (temperature == 1.0 and top_k is None and top_p is None and seed is None):
        return samplers.GreedySampler()
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    seed = 0 if seed is None else int(seed)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        return samplers.TopPSampler(p=top_p, k=top_k, seed=seed, temperature=temperature)
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        return samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    return samplers.RandomSampler(seed=seed, temperature=temperature)


def reseed(sampler, seed):
    """Reset a sampler's random state so the same seed gives the same tokens, without a retrace."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and seed is not None:
        generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))


def pad_prompts(prompts, max_new_tokens, pad_id=0):
    """Right-pad token-id prompts to [B, max_prompt + max_new_tokens]; returns (ids, mask, lengths)."""
    if not prompts:
        raise ValueError("generate() needs at least one prompt")
    lengths = np.array([len(p) for p in prompts], dtype="int32")
    if lengths.min() < 1:
        raise ValueError("every prompt needs at least one token (e.g. a start/end-of-text token)")
    total = int(lengths.max()) + max_new_tokens
    ids = np.full((len(prompts), total), pad_id, dtype="int32")
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = prompt
    mask = np.arange(total)[None, :] < lengths[:, None]
    return ids, mask, lengths


def cut_generations(tokens, lengths, max_new_tokens, stop_token_ids=()):
    """Each row's new tokens: at most `max_new_tokens`, ending before its first stop token."""
    stop = set(stop_token_ids or ())
    out = []
    for row, length in zip(np.asarray(tokens), lengths):
        new = row[length : length + max_new_tokens].tolist()
        for i, token in enumerate(new):
            if token in stop:
                new = new[:i]
                break
        out.append(new)
    return out


class CompiledDecoder:
    """Runs a sampler over a model's `next` function inside one compiled `tf.function` per sampler.

    `next_fn(prompt, cache, index)` and `build_cache_fn(prompt, mask)` come
    from the model; the cache is filled from the whole padded prompt, then
    the sampler writes one token per step from the shortest prompt's end on
    (longer prompts keep their own tokens where `mask` is True).
    """

    def __init__(self, next_fn, build_cache_fn, jit_compile=True):
        self.next_fn = next_fn
        self.build_cache_fn = build_cache_fn
        self.jit_compile = jit_compile
        self._compiled = {}

    def __call__(self, prompt, mask, sampler_options, stop_token_ids=None):
        # The seed's value is not part of the key: `reseed` sets it without a retrace.
        options = tuple(sorted((k, (v is not None) if k == "seed" else v) for k, v in sampler_options.items()))
        key = (options, tuple(stop_token_ids or ()))
        if key not in self._compiled:
            sampler = make_sampler(**sampler_options)
            stop = None if not stop_token_ids else tuple(stop_token_ids)

            def run(prompt, mask):
                cache, index = self.build_cache_fn(prompt, mask)
                return sampler(self.next_fn, prompt, cache=cache, index=index, mask=mask,
                               stop_token_ids=stop)

            self._compiled[key] = (sampler, tf.function(run, jit_compile=self.jit_compile))
        sampler, fn = self._compiled[key]
        reseed(sampler, sampler_options.get("seed"))
        return fn(tf.constant(prompt), tf.constant(mask))


def min_prompt_index(mask):
    """The first position where some row has no prompt token: decoding starts there."""
    return keras.ops.min(keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1))


def sample_with_tensor_options(logits, temperature, top_k, seed, step):
    """One token per row, with every option a tensor (for serving signatures).

    keras-hub's samplers fix their strategy when constructed; a SavedModel
    signature needs temperature/top-k/seed as request inputs instead.
    temperature <= 0 is greedy; top_k <= 0 means no top-k filter; the draw is
    stateless, from (seed, step), so a request is reproducible.
    """
    logits = tf.cast(logits, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    vocab = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(tf.cast(top_k, tf.int32), vocab), vocab)
    kth_best = tf.math.top_k(scaled, k).values[:, -1:]
    filtered = tf.where(scaled < kth_best, tf.constant(-1e30, tf.float32), scaled)
    seeds = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
    sampled = tf.random.stateless_categorical(filtered, 1, seed=seeds, dtype=tf.int32)[:, 0]
    return tf.where(tf.cast(temperature, tf.float32) > 0, sampled, greedy)
