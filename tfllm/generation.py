"""Autoregressive decoding shared by every generative model in tfllm.

Token choice is keras-hub's samplers (greedy, random with temperature,
top-k, top-p) and tfllm's `BeamSearch` (below): all are generic over a
`next(prompt, cache, index) -> (logits, hidden, cache)` function, which is
exactly what a model's `call_with_cache` gives, and they run the whole loop
as one `while_loop` that compiles with static shapes. GPT (`GptCausalLM`) and
the encoder-decoder (`Seq2SeqTransformer`) both decode through this module.
What it adds is the part around them: beam search with finished hypotheses
and a length penalty, building a sampler from flags, re-seeding without
retracing, right-padding a batch of prompts of different lengths, and
cutting each row at its own budget and stop token.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import tree
from keras_hub import samplers

from tfllm.errors import ConfigError


def make_sampler(temperature=1.0, top_k=None, top_p=None, num_beams=None, seed=None, length_penalty=0.0):
    """The sampler for these options.

    greedy: temperature 0 (or no other option); beam search: num_beams > 1
    (tfllm's `BeamSearch`, with `length_penalty`); top-p (optionally also
    restricted to top-k); top-k; else plain sampling at `temperature`.
    """
    if num_beams is not None and num_beams > 1:
        return BeamSearch(num_beams=num_beams, length_penalty=length_penalty)
    if temperature == 0 or (temperature == 1.0 and top_k is None and top_p is None and seed is None):
        return samplers.GreedySampler()
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    seed = 0 if seed is None else int(seed)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        return samplers.TopPSampler(p=top_p, k=top_k, seed=seed, temperature=temperature)
    if top_k is not None:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        return samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    return samplers.RandomSampler(seed=seed, temperature=temperature)


def reseed(sampler, seed):
    """Reset a sampler's random state so the same seed gives the same tokens, without a retrace."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and seed is not None:
        generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))


def pad_id_for(stop_token_ids):
    """The smallest token id that is not a stop token: what the not-yet-generated positions hold.

    keras-hub's samplers end a row as soon as a position outside its prompt
    holds a stop token, so padding with one (id 0 with `stop_token_ids=[0]`,
    e.g. GPT-NeoX's end of text) would end every row before its first token.
    The padding is never read: those positions are masked until written.
    """
    stops = set(stop_token_ids or ())
    return next(i for i in range(len(stops) + 1) if i not in stops)


def pad_prompts(prompts, max_new_tokens, pad_id=0):
    """Right-pad token-id prompts to [B, max_prompt + max_new_tokens]; returns (ids, mask, lengths)."""
    if not prompts:
        raise ConfigError("generate() needs at least one prompt")
    lengths = np.array([len(p) for p in prompts], dtype="int32")
    if lengths.min() < 1:
        raise ConfigError("every prompt needs at least one token (e.g. a start/end-of-text token)")
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

            # autograph=False: the loop is an explicit while_loop; AutoGraph would only re-parse the model's code.
            self._compiled[key] = (sampler, tf.function(run, jit_compile=self.jit_compile, autograph=False))
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


def length_penalty(length, alpha):
    """GNMT's length penalty (Wu et al., 2016, eq. 14): ((5 + length) / 6) ** alpha.

    A finished hypothesis scores `log P(Y | X) / length_penalty(|Y|, alpha)`;
    alpha = 0 is the plain log-probability, larger alpha favours longer outputs.
    `length` counts the generated tokens, the stop token included.
    """
    return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** alpha


def tile_beams(x, num_beams):
    """[B, ...] -> [B * num_beams, ...], row b's copies at b * num_beams ... (the beam layout).

    Tensors a `next` function closes over (encoder outputs, cross-attention
    keys/values) must be tiled with this before `BeamSearch` runs.
    """
    return tf.repeat(x, num_beams, axis=0)


class BeamSearch:
    """Beam search with finished hypotheses and GNMT length penalty, as one compiled `while_loop`.

    Same call protocol as keras-hub's samplers (`next(prompt, cache, index)
    -> (logits, hidden, cache)` over a right-padded `prompt` whose `mask`
    marks tokens that are given), so `CompiledDecoder` and the models use it
    like any sampler. Unlike keras-hub's `BeamSampler`, a beam that emits a
    stop token leaves the search with its score frozen at
    `log P / length_penalty(length)` (keras-hub keeps extending it and keeps
    adding log-probabilities), forced prompt tokens add nothing to a beam's
    score, and the loop ends as soon as no live beam can beat the best
    finished one. Without stop tokens and with prompts of one length it
    returns what keras-hub's `BeamSampler` returns (tested).

    Each step takes the 2K best extensions of the K live beams (so K stay
    live even if K of them end), moves those among the best K that end in a
    stop token into a K-best finished list, and keeps the K best others live. At the end, live beams
    count as finished at the maximum length.

    The flat beam layout is `b * num_beams + k` (see `tile_beams`); `cache`
    (any nest of tensors with a leading batch axis) is tiled and reordered
    with the beams.

    Args:
        num_beams: beams per row (1 is greedy).
        length_penalty: alpha of `length_penalty`; 0 = no penalty.
        return_scores: also return each row's best score.
    """

    def __init__(self, num_beams=4, length_penalty=0.0, return_scores=False):
        if num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {num_beams}")
        self.num_beams = num_beams
        self.length_penalty = float(length_penalty)
        self.return_scores = return_scores

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None, **unused):
        k = self.num_beams
        prompt = tf.convert_to_tensor(prompt)
        batch_size, max_length = tf.shape(prompt)[0], prompt.shape[1] or tf.shape(prompt)[1]
        mask = tf.zeros_like(prompt, tf.bool) if mask is None else tf.cast(mask, tf.bool)
        prompt_lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # [B]
        stop = tf.constant(list(stop_token_ids or []) or [-1], prompt.dtype)
        has_cache = cache is not None
        cache = tree.map_structure(lambda x: tile_beams(x, k), cache) if has_cache else ()
        neg_inf = tf.constant(-np.inf, tf.float32)
        alive_seq = tile_beams(prompt, k)  # [B*K, L]
        # Only beam 0 is live at first: the others are copies of it.
        alive_log_probs = tf.tile(tf.constant([[0.0] + [-np.inf] * (k - 1)], tf.float32), [batch_size, 1])
        finished_seq = tf.reshape(alive_seq, [batch_size, k, max_length])
        finished_scores = tf.fill([batch_size, k], neg_inf)
        alpha = self.length_penalty

        def best_alive_bound(index, alive_log_probs):
            # Log-probabilities only fall as a beam grows; its best possible
            # score divides the current one by the most favourable penalty.
            best = tf.reduce_max(alive_log_probs, axis=1)
            shortest = length_penalty(tf.maximum(index - prompt_lengths + 1, 0), alpha)
            longest = length_penalty(max_length - prompt_lengths, alpha)
            return tf.maximum(best / shortest, best / longest)

        def cond(index, alive_seq, cache, alive_log_probs, finished_seq, finished_scores):
            if stop_token_ids is None:
                return index < max_length
            done = tf.reduce_max(finished_scores, axis=1) >= best_alive_bound(index, alive_log_probs)
            return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(done)))

        def body(index, alive_seq, cache, alive_log_probs, finished_seq, finished_scores):
            logits, _, new_cache = next(alive_seq, cache, index)
            vocab_size = tf.shape(logits)[-1]
            step = tf.reshape(tf.nn.log_softmax(tf.cast(logits, tf.float32)), [batch_size, k, vocab_size])
            # Rows still inside their prompt take the prompt token, at no cost.
            forced = mask[:, index]
            forced_step = tf.one_hot(prompt[:, index], vocab_size, on_value=0.0, off_value=-np.inf)
            step = tf.where(forced[:, None, None], forced_step[:, None, :], step)
            candidates = tf.reshape(alive_log_probs[:, :, None] + step, [batch_size, k * vocab_size])
            top_log_probs, top_indices = tf.math.top_k(candidates, 2 * k)  # [B, 2K]
            source_beam = top_indices // vocab_size + tf.range(batch_size)[:, None] * k  # flat index
            token = tf.cast(top_indices % vocab_size, prompt.dtype)
            at_index = tf.equal(tf.range(max_length), index)  # [L]
            candidate_seq = tf.where(at_index, token[:, :, None], tf.gather(alive_seq, source_beam))
            is_stop = tf.reduce_any(tf.equal(token[:, :, None], stop), axis=-1) & ~forced[:, None]

            # The K best candidates that did not stop stay live.
            alive_log_probs, keep = tf.math.top_k(tf.where(is_stop, neg_inf, top_log_probs), k)
            alive_seq = tf.reshape(tf.gather(candidate_seq, keep, batch_dims=1), [-1, max_length])
            parents = tf.reshape(tf.gather(source_beam, keep, batch_dims=1), [-1])
            new_cache = tree.map_structure(lambda x: tf.gather(x, parents), new_cache)

            # Those that stopped among the K best candidates join the K best
            # finished ones, scored with the penalty. (Only the K best: as in
            # Hugging Face's beam search, so one beam is exactly greedy search.)
            generated = index - prompt_lengths + 1
            finishing = is_stop & (tf.range(2 * k) < k)[None, :]
            scores = tf.where(finishing, top_log_probs / length_penalty(generated, alpha)[:, None], neg_inf)
            finished_scores, best = tf.math.top_k(tf.concat([finished_scores, scores], 1), k)
            finished_seq = tf.gather(tf.concat([finished_seq, candidate_seq], 1), best, batch_dims=1)
            state = (alive_seq, new_cache, alive_log_probs, finished_seq, finished_scores)
            shapes = (alive_seq0, cache, alive_log_probs0, finished_seq0, finished_scores0)
            state = tree.map_structure(lambda x, like: tf.ensure_shape(x, like.shape), state, shapes)
            return (index + 1, *state)

        alive_seq0, alive_log_probs0 = alive_seq, alive_log_probs
        finished_seq0, finished_scores0 = finished_seq, finished_scores
        index = tf.cast(index, tf.int32)
        index, alive_seq, _, alive_log_probs, finished_seq, finished_scores = tf.while_loop(
            cond, body, (index, alive_seq, cache, alive_log_probs, finished_seq, finished_scores),
            maximum_iterations=max_length - index,
        )
        # Live beams count as finished where the loop stopped.
        alive_scores = alive_log_probs / length_penalty(index - prompt_lengths, alpha)[:, None]
        scores = tf.concat([finished_scores, alive_scores], 1)
        seqs = tf.concat([finished_seq, tf.reshape(alive_seq, [batch_size, k, max_length])], 1)
        best = tf.argmax(scores, axis=1, output_type=tf.int32)
        tokens = tf.gather(seqs, best, batch_dims=1)
        if self.return_scores:
            return tokens, tf.gather(scores, best, batch_dims=1)
        return tokens
