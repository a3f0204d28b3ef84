"""generate(): cache vs recomputation, samplers, beam search, padding, stop tokens, seeds."""

import numpy as np
import pytest
from keras import ops

from tfllm import generation
from tfllm.models import Gpt
from tfllm.models import GptCausalLM


@pytest.fixture(scope="module")
def lm():
    model = GptCausalLM(Gpt.from_preset("gpt_nano", dropout=0.0, max_sequence_length=96))
    # Every new prompt shape is a new XLA compile (~5 s here): the XLA path is tested once,
    # in the cache-vs-recomputation test; the other tests trace without XLA.
    xla_generate = model.generate
    model.generate = lambda *a, jit_compile=False, **kw: xla_generate(*a, jit_compile=jit_compile, **kw)
    return model


def greedy_without_cache(lm, prompt, n):
    """Reference: full forward pass over the whole sequence for every new token."""
    ids = list(prompt)
    for _ in range(n):
        logits = lm({"token_ids": np.array([ids], "int32"),
                     "padding_mask": np.ones((1, len(ids)), bool)}).numpy()
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_cached_greedy_equals_full_recomputation_50_tokens(lm):
    prompt = [11, 12, 13, 14]
    assert lm.generate([prompt], max_new_tokens=50, jit_compile=True)[0] == greedy_without_cache(lm, prompt, 50)


def test_prompts_of_different_lengths_match_generating_each_alone(lm):
    prompts = [[3, 4], [5, 6, 7, 8, 9, 10], [42]]
    together = lm.generate(prompts, max_new_tokens=12)
    alone = [lm.generate([p], max_new_tokens=12)[0] for p in prompts]
    assert together == alone
    assert all(len(t) == 12 for t in together)


def test_top_k_1_equals_greedy_and_beam_1_equals_greedy(lm):
    prompts = [[7, 8, 9], [1, 2]]
    greedy = lm.generate(prompts, max_new_tokens=15)
    assert lm.generate(prompts, max_new_tokens=15, top_k=1, temperature=0.8, seed=1) == greedy
    assert lm.generate(prompts, max_new_tokens=15, num_beams=1) == greedy


def test_sampling_is_reproducible_with_a_seed(lm):
    prompts = [[7, 8, 9]]
    a = lm.generate(prompts, max_new_tokens=20, temperature=1.5, seed=7)
    b = lm.generate(prompts, max_new_tokens=20, temperature=1.5, seed=7)
    c = lm.generate(prompts, max_new_tokens=20, temperature=1.5, seed=8)
    assert a == b and a != c


def test_stop_token_ends_a_row(lm):
    prompt = [20, 21, 22]
    full = lm.generate([prompt], max_new_tokens=10)[0]
    stop = full[4]
    cut = lm.generate([prompt], max_new_tokens=10, stop_token_ids=[stop])[0]
    assert cut == full[: full.index(stop)]


def test_stop_token_0_is_not_mistaken_for_the_padding(lm):
    """Token 0 pads the not-yet-generated positions unless it is a stop token (GPT-NeoX's end of text is 0)."""
    prompts = [[20, 21, 22], [5]]
    full = lm.generate(prompts, max_new_tokens=10)
    assert (generation.pad_id_for([0]), generation.pad_id_for([0, 1, 3]), generation.pad_id_for(None)) == (1, 2, 0)
    expected = [row[: row.index(0)] if 0 in row else row for row in full]
    assert lm.generate(prompts, max_new_tokens=10, stop_token_ids=[0]) == expected


def test_generation_past_the_context_window_slides_it(lm):
    prompt = [1, 2, 3] * 20  # 60 of the 96 positions
    long = lm.generate([prompt], max_new_tokens=80)[0]
    assert len(long) == 80
    assert long[:36] == lm.generate([prompt], max_new_tokens=36)[0]  # the part that fits is unchanged


def test_strings_need_a_tokenizer(lm):
    with pytest.raises(ValueError, match="no tokenizer"):
        lm.generate(["ROMEO:"])


def test_top_p_samples_only_from_the_nucleus():
    # p=0.7 over [0.5, 0.3, 0.15, 0.05]: the nucleus is {0, 1} (0.8 >= 0.7), renormalised 5/8, 3/8.
    sampler = generation.make_sampler(top_p=0.7, seed=0)
    probs = np.tile(np.array([[0.5, 0.3, 0.15, 0.05]], "float32"), (20000, 1))
    tokens = ops.convert_to_numpy(sampler.get_next_token(probs))
    assert set(np.unique(tokens)) <= {0, 1}
    assert abs((tokens == 0).mean() - 5 / 8) < 0.02  # 6 sigma is about 0.02 for n=20000


def constructed_next(table):
    """A `next` whose logits depend only on the previous token: table[prev] = probabilities."""
    log_table = np.log(np.asarray(table, "float32"))

    def next_fn(prompt, cache, index):
        prev = ops.take_along_axis(prompt, ops.reshape(index - 1, (1, 1)) + ops.zeros_like(prompt[:, :1]), axis=1)[:, 0]
        return ops.take(log_table, prev, axis=0), None, cache

    return next_fn


def test_beam_search_finds_the_higher_scoring_sequence():
    # From token 0: greedy takes 1 (p=0.6) but then every continuation has p<=0.35;
    # taking 2 (p=0.4) leads to 3 with p=0.95: 0.4*0.95 = 0.38 > 0.6*0.35 = 0.21.
    table = [
        [0.001, 0.6, 0.398, 0.001],
        [0.35, 0.33, 0.01, 0.31],
        [0.02, 0.02, 0.01, 0.95],
        [0.25, 0.25, 0.25, 0.25],
    ]
    prompt = np.array([[0, 0, 0]], "int32")
    mask = np.array([[True, False, False]])
    cache = ops.zeros((1, 1))
    greedy = generation.make_sampler()(constructed_next(table), prompt, cache=cache, index=1, mask=mask)
    beam = generation.make_sampler(num_beams=4)(constructed_next(table), prompt, cache=cache, index=1, mask=mask)
    assert ops.convert_to_numpy(greedy)[0, 1:].tolist() == [1, 0]
    assert ops.convert_to_numpy(beam)[0, 1:].tolist() == [2, 3]


def test_bad_sampler_options():
    with pytest.raises(ValueError, match="top_p"):
        generation.make_sampler(top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        generation.make_sampler(top_k=0)
