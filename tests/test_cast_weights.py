"""cast_weights: a bfloat16 copy of a causal LM (GPT, Llama) decodes like the float32 model, up to bf16 round-off."""

import ml_dtypes
import numpy as np
import pytest

from tfllm.errors import ConfigError
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import Llama
from tfllm.models import LlamaCausalLM
from tfllm.models import cast_weights

# bf16 keeps 8 significant bits (relative round-off 2^-9 per value); through two blocks and the head the logits
# of these toy models move by ~1% of their range: allowed 3% of the float32 logits' largest magnitude.
RELATIVE_TOLERANCE = 0.03


@pytest.fixture(scope="module", params=["gpt", "llama"])
def pair(request):
    backbone = (Gpt.from_preset("gpt_nano", dropout=0.0, max_sequence_length=64) if request.param == "gpt"
                else Llama.from_preset("llama_nano", max_sequence_length=64))
    lm = (GptCausalLM if request.param == "gpt" else LlamaCausalLM)(backbone)
    return lm, cast_weights(lm, "bfloat16")


def test_weights_are_the_float32_weights_rounded_to_bfloat16(pair):
    lm, half = pair
    assert len(half.weights) == len(lm.weights)
    for source, target in zip(lm.weights, half.weights):
        assert target.dtype == "bfloat16", target.path
        expected = np.asarray(source).astype(ml_dtypes.bfloat16)  # numpy's round-to-nearest-even
        np.testing.assert_array_equal(np.asarray(target), expected, err_msg=target.path)
    assert half.init_cache(1, 4)[0][0].dtype == "bfloat16"


def test_logits_are_float32_and_close_to_the_float32_model(pair):
    lm, half = pair
    ids = np.random.default_rng(0).integers(1, 1000, (2, 12)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    reference, logits = np.asarray(lm(inputs)), np.asarray(half(inputs))
    assert logits.dtype == np.float32
    assert np.abs(logits - reference).max() <= RELATIVE_TOLERANCE * np.abs(reference).max()
    cached = np.asarray(half.call_with_cache(ids, half.init_cache(2, 12), 0)[0])
    np.testing.assert_allclose(cached, logits, atol=1e-6)  # the cached path is the same bf16 network


def test_greedy_tokens_are_the_argmax_of_the_bfloat16_network(pair):
    """Teacher-forced check: each generated token is the argmax of the full bf16 forward pass at its position,
    up to bf16 round-off (the one-row cached step and the whole-sequence pass round differently: the toy
    model's random logits have near-ties)."""
    _, half = pair
    prompt = [11, 12, 13, 14]
    new = half.generate([prompt], max_new_tokens=8, temperature=0)[0]  # default for bf16 weights: no XLA
    ids = np.array([prompt + new], "int32")
    logits = np.asarray(half({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}))[0, len(prompt) - 1:-1]
    chosen = logits[np.arange(len(new)), new]
    assert np.all(chosen >= logits.max(-1) - RELATIVE_TOLERANCE * np.abs(logits).max()), (chosen, logits.max(-1))
    assert (chosen == logits.max(-1)).mean() >= 0.5


def test_bad_dtype_is_a_config_error(pair):
    with pytest.raises(ConfigError, match="weights dtype must be one of float32, bfloat16, float16, got 'int8'"):
        cast_weights(pair[0], "int8")


def test_greedy_agreement_counts_positions_and_prefixes():
    from tools.bench.greedy_agreement import agreement  # noqa: PLC0415  (a tool module: only this test needs it)

    reference = [[1, 2, 3, 4], [5, 6, 7, 8]]
    other = [[1, 2, 0, 4], [5, 6, 7, 8]]  # row 0 differs at position 2 only, row 1 is equal
    assert agreement(reference, other) == (7 / 8, (2 + 4) / 8)
