"""Seq2SeqTransformer, beam search, the parallel-text pipeline, the loss, and recipes/translate.py end to end."""

import itertools
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_hub import samplers

from tests.fresh_process import rest_predict_in_fresh_process
from tests.run_script import run_script
from tfllm import generation
from tfllm.data import parallel_text
from tfllm.data.errors import DataError
from tfllm.export import read_warmup_requests
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import Seq2SeqTransformer
from tfllm.training import seq2seq_losses

ROOT = Path(__file__).resolve().parents[1]
BOS, EOS = 2, 3


def features(source, decoder):
    source, decoder = np.asarray(source, "int32"), np.asarray(decoder, "int32")
    return {"encoder_token_ids": source, "encoder_padding_mask": source != 0,
            "decoder_token_ids": decoder, "decoder_padding_mask": decoder != 0}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    # A larger init than training uses makes next-token distributions peaked,
    # so argmax/beam decisions are not decided by float32 noise.
    return Seq2SeqTransformer.from_preset("transformer_tiny", vocabulary_size=12, dropout=0.0,
                                          num_decoder_layers=2, initializer_range=0.4)


def log_probs_of(model, source, targets):
    """Reference: log P(target) for each target (a list ending in EOS or not), by a full forward pass."""
    width = max(len(t) for t in targets) + 1
    decoder = np.zeros((len(targets), width), "int32")
    for i, t in enumerate(targets):
        decoder[i, : len(t) + 1] = [BOS, *t]
    logits = model(features(np.repeat(np.asarray([source]), len(targets), 0), decoder)).numpy().astype("float64")
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return np.array([sum(logp[i, j, tok] for j, tok in enumerate(t)) for i, t in enumerate(targets)])


# ---- The model -------------------------------------------------------------


def test_forward_shapes_and_masks(model):
    source = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 11, 0, 0, 0]])
    decoder = np.array([[BOS, 4, 5, 6], [BOS, 7, 8, 0]])
    logits = model(features(source, decoder)).numpy()
    assert logits.shape == (2, 4, 12) and logits.dtype == np.float32
    # Padded source positions are invisible: changing their ids changes nothing.
    other = np.where(source == 0, 7, source)
    changed = model({**features(other, decoder), "encoder_padding_mask": source != 0}).numpy()
    np.testing.assert_allclose(changed, logits, atol=1e-6)
    # Causal decoder: changing token 2 leaves positions 0-1 alone, changes 2-3.
    later = decoder.copy()
    later[:, 2] = 11
    out = model(features(source, later)).numpy()
    np.testing.assert_allclose(out[:, :2], logits[:, :2], atol=1e-6)
    assert np.abs(out[0, 2:] - logits[0, 2:]).max() > 1e-3
    # The source matters (cross-attention).
    assert np.abs(model(features(source[::-1], decoder)).numpy() - logits).max() > 1e-3


def test_embedding_options_and_config_round_trip():
    tied = Seq2SeqTransformer.from_preset("transformer_tiny")
    untied = Seq2SeqTransformer.from_preset("transformer_tiny", share_embeddings=False, tie_output_embeddings=False,
                                            target_vocabulary_size=50, position_embedding="sinusoidal")
    assert tied.output_projection is None and tied.source_embedding is tied.target_embedding
    assert untied.source_embedding is not untied.target_embedding
    d, t = 32, 50
    # Untied: separate source (v x d) / target (t x d) tokens, a Dense head (d x t + t), no learned positions.
    learned_positions = 64 * d
    assert untied.count_params() - tied.count_params() == t * d + d * t + t - learned_positions
    assert untied(features([[5, 6]], [[BOS, 7, 8]])).shape == (1, 3, 50)
    with pytest.raises(ValueError, match="one vocabulary"):
        Seq2SeqTransformer.from_preset("transformer_tiny", target_vocabulary_size=50)
    clone = Seq2SeqTransformer.from_config(untied.get_config())
    clone.set_weights(untied.get_weights())
    batch = features([[5, 6, 7]], [[BOS, 7, 8]])
    np.testing.assert_allclose(clone(batch).numpy(), untied(batch).numpy(), atol=1e-6)
    assert Seq2SeqTransformer.presets["transformer_small"]["num_encoder_layers"] == 3
    assert Seq2SeqTransformer.presets["transformer_base"]["hidden_dim"] == 512


def test_cached_incremental_decoding_equals_full_recompute(model):
    source = np.array([[5, 6, 7, 8, 9], [10, 11, 4, 0, 0]], "int32")
    target = np.array([[BOS, 4, 5, 6, 7, 8, 9], [BOS, 9, 8, 7, 6, 5, 4]], "int32")
    full = model(features(source, target)).numpy()
    encoded = model.encode(source, source != 0)
    cross = model.cross_attention_cache(encoded)
    cache = model.init_cache(2, target.shape[1])
    for t in range(target.shape[1]):
        logits, _, cache = model.call_with_cache(target[:, t:t + 1], cache, t, cross, source != 0)
        np.testing.assert_allclose(logits.numpy()[:, 0], full[:, t], atol=1e-5)


# ---- Decoding ----------------------------------------------------------------


def greedy_by_recomputation(model, source, n, eos=EOS):
    """Reference greedy: a full forward pass over the whole prefix for every new token."""
    out = [BOS]
    for _ in range(n):
        token = int(model(features([source], [out])).numpy()[0, -1].argmax())
        if token == eos:
            break
        out.append(token)
    return out[1:]


def test_greedy_and_beam_1_equal_greedy_by_recomputation(model):
    sources = [[5, 6, 7, 8, 9], [10, 11, 4]]
    greedy = model.generate(sources, BOS, EOS, max_new_tokens=8)
    assert greedy == [greedy_by_recomputation(model, s, 8) for s in sources]
    # Beam search with one beam through the same loop.
    source = np.array([[5, 6, 7, 8, 9, 0, 0, 0], [10, 11, 4, 0, 0, 0, 0, 0]], "int32")
    decode = tf.function(lambda s, m: model._decode(s, m, 9, BOS, EOS, generation.BeamSearch(1)))
    tokens = decode(tf.constant(source), tf.constant(source != 0)).numpy()[:, 1:].tolist()
    assert [row[: row.index(EOS)] if EOS in row else row for row in tokens] == greedy


def test_greedy_with_eos_0_is_not_ended_by_the_padding(model):
    """eos_id 0 (the source padding id): greedy decodes as with any other end token (it returned [] before)."""
    sources = [[5, 6, 7, 8, 9], [10, 11, 4]]
    assert model.generate(sources, BOS, 0, max_new_tokens=8) == [
        greedy_by_recomputation(model, s, 8, eos=0) for s in sources]


def test_beam_search_equals_brute_force_on_the_model(model):
    """Exhaustive check: with num_beams >= the candidates of any step, beam search is exact."""
    vocab, max_new = 12, 3
    source = [5, 6, 7, 8]
    others = [t for t in range(vocab) if t != EOS]
    candidates = [list(p) + [EOS] for n in range(max_new) for p in itertools.product(others, repeat=n)]
    candidates += [list(p) for p in itertools.product(others, repeat=max_new)]  # cut at the maximum length
    log_probs = log_probs_of(model, source, candidates)
    for alpha in (0.0, 1.0):
        lengths = np.array([len(c) for c in candidates], "float64")
        scores = log_probs / ((5 + lengths) / 6) ** alpha
        best = candidates[int(scores.argmax())]
        (tokens,), (score,) = model.generate([source], BOS, EOS, max_new_tokens=max_new, num_beams=len(others) * vocab,
                                             length_penalty=alpha, return_scores=True)
        assert tokens == [t for t in best if t != EOS], alpha
        assert score == pytest.approx(scores.max(), abs=1e-4)


def test_xla_decoding_gives_the_same_tokens_and_scores(model):
    """generate(jit_compile=True) == generate(jit_compile=False), greedy and beam, sources of different lengths.

    The first decoding step is right even when the cache update is wrong (it
    only reads position 0), so the outputs must run several steps: with
    EOS = 1, which this model rarely emits, some run to the budget.
    """
    sources = [[5, 6, 7, 8, 9], [10, 11, 4], [4, 5, 6, 7, 8, 9, 10, 11, 4, 5]]
    for beams in (1, 3):
        plain, plain_scores = model.generate(sources, BOS, 1, max_new_tokens=10, num_beams=beams, return_scores=True)
        xla, xla_scores = model.generate(sources, BOS, 1, max_new_tokens=10, num_beams=beams, jit_compile=True,
                                         return_scores=True)
        assert max(len(t) for t in plain) == 10, plain
        assert xla == plain, beams
        if beams > 1:
            np.testing.assert_allclose(xla_scores, plain_scores, atol=1e-4)
    assert model.generate(sources, BOS, 1, max_new_tokens=10) == [greedy_by_recomputation(model, s, 10, eos=1)
                                                                  for s in sources]


def test_length_penalty_formula():
    # GNMT: ((5 + |Y|) / 6) ** alpha; by hand: (9/6) ** 0.6 = exp(0.6 ln 1.5) = exp(0.243279) = 1.275424
    assert float(generation.length_penalty(4, 0.6)) == pytest.approx(1.275424, abs=1e-5)
    assert float(generation.length_penalty(1, 0.6)) == pytest.approx(1.0)
    assert float(generation.length_penalty(17, 0.0)) == pytest.approx(1.0)
    assert float(generation.length_penalty(7, 1.0)) == pytest.approx(2.0)


def bigram_next(table):
    """A `next` whose log-probabilities depend only on the previous token: table[prev]."""
    log_table = tf.constant(np.log(np.asarray(table)), tf.float32)

    def next_fn(tokens, cache, index):
        return tf.gather(log_table, tokens[:, index - 1]), None, cache

    return next_fn


def test_beam_search_with_length_penalty_on_a_hand_made_model():
    # Tokens: 0 pad, 1 BOS, 2 EOS, 3 A, 4 B, 5 C, 6 D. "A EOS" has log P = -1.0 (2 tokens),
    # "B C D EOS" has log P = -1.2 (4 tokens). By hand: alpha 0: -1.0 > -1.2; alpha 0.6:
    # -1.0/(7/6)^0.6 = -0.912 > -1.2/1.5^0.6 = -0.941; alpha 1: -0.857 < -0.800, the long one wins.
    v = 7
    table = np.zeros((v, v))

    def row(prev, **probs):  # the rest of the mass is spread evenly
        for token, p in probs.items():
            table[prev, "0 1 EOS A B C D".split().index(token)] = p
        table[prev][table[prev] == 0] = (1 - sum(probs.values())) / (v - len(probs))
    row(1, A=0.5, B=0.45)                   # ln 0.5 = -0.693, ln 0.45 = -0.799
    row(3, EOS=math.exp(-1.0 - math.log(0.5)))
    row(4, C=math.exp(-0.1))
    row(5, D=math.exp(-0.1))
    row(6, EOS=math.exp(-1.2 - math.log(0.45) + 0.2))
    for prev in (0, 2):
        row(prev)
    log_table = np.log(table)

    def brute_force(alpha, max_new=5):
        best, best_score = None, -np.inf
        for n in range(1, max_new + 1):
            for seq in itertools.product(range(v), repeat=n):
                if 2 in seq[:-1] or (seq[-1] != 2 and n < max_new):
                    continue
                lp = sum(log_table[a, b] for a, b in zip((1,) + seq, seq))
                score = lp / ((5 + n) / 6) ** alpha
                if score > best_score:
                    best, best_score = list(seq), score
        return best, best_score

    prompt = np.zeros((1, 6), "int32")
    prompt[0, 0] = 1
    mask = np.arange(6)[None] < 1
    expected = {0.0: [3, 2], 0.6: [3, 2], 1.0: [4, 5, 6, 2]}
    for alpha, want in expected.items():
        reference, reference_score = brute_force(alpha)
        assert reference == want
        tokens, score = generation.BeamSearch(3, alpha, return_scores=True)(
            bigram_next(table), tf.constant(prompt), index=1, mask=tf.constant(mask), stop_token_ids=(2,))
        assert tokens.numpy()[0, 1: 1 + len(want)].tolist() == want
        assert float(score[0]) == pytest.approx(reference_score, abs=1e-5)
    greedy = generation.make_sampler()(bigram_next(table), tf.constant(prompt), index=1, mask=tf.constant(mask),
                                       stop_token_ids=(2,))
    assert greedy.numpy()[0, 1:3].tolist() == [3, 2]


def test_tfllm_beam_search_matches_keras_hub_beam_sampler_for_gpt():
    """GPT's results did not change when its beam search moved from keras-hub to tfllm.generation."""
    keras.utils.set_random_seed(3)
    lm = GptCausalLM(Gpt.from_preset("gpt_nano", dropout=0.0, max_sequence_length=32, initializer_range=0.3))
    prompt, mask, _ = generation.pad_prompts([[5, 6, 7], [8, 9, 10]], 6)

    def run(sampler):
        cache, index = lm._build_cache(tf.constant(prompt), tf.constant(mask))
        return sampler(lm._next, tf.constant(prompt), cache=cache, index=index, mask=tf.constant(mask)).numpy()

    theirs = run(samplers.BeamSampler(num_beams=3))
    ours = run(generation.make_sampler(num_beams=3))
    np.testing.assert_array_equal(ours, theirs)
    assert (ours != run(generation.make_sampler())).any()  # and beam search is not greedy here


# ---- Loss and data -----------------------------------------------------------------


def test_label_smoothed_loss_matches_keras_and_averages_over_tokens():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 2, 0], [4, 4, 3]], "int32")
    mask = np.array([[True, True, False], [True, True, True]])
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)
    expected = keras_loss(np.eye(5)[labels], logits).numpy()
    per_token = seq2seq_losses.label_smoothed_cross_entropy(labels, logits, 0.1).numpy()
    np.testing.assert_allclose(per_token, expected, rtol=1e-5)
    per_example = seq2seq_losses.translation_loss(0.1)({"target_ids": labels, "target_mask": mask}, logits).numpy()
    # The Trainer's mean over examples is the mean over the 5 real tokens.
    assert per_example.mean() == pytest.approx(expected[mask].mean(), rel=1e-5)
    ce, count = seq2seq_losses.token_cross_entropy({"target_ids": labels, "target_mask": mask}, logits)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(ce.numpy(), (nll * mask).sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(count.numpy(), [2, 3])


def test_parallel_files_must_align(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    with pytest.raises(DataError, match=r"a\.en has 3 lines, .*a\.de has 2"):
        parallel_text.read_parallel_text(tmp_path / "a.en", tmp_path / "a.de")
    with pytest.raises(DataError, match="not found"):
        parallel_text.read_parallel_text(tmp_path / "a.en", tmp_path / "missing.de")


def test_filtering_teacher_forcing_padding_and_buckets():
    sources = [[5], [5, 6, 7], [], [5] * 9, [6, 6], [7] * 4]
    targets = [[8, 9], [9], [8], [8], [9] * 8, [8] * 3]
    kept_s, kept_t, dropped = parallel_text.filter_by_length(sources, targets, max_source_length=8,
                                                             max_target_length=8)
    # Dropped: the empty source, the 9-token source, the 8-token target (+EOS = 9 > 8).
    assert dropped == 3 and kept_s == [[5], [5, 6, 7], [7] * 4] and kept_t == [[8, 9], [9], [8] * 3]

    batch = next(iter(parallel_text.translation_dataset(kept_s, kept_t, 3, training=False, bos_id=BOS, eos_id=EOS)))
    x, y = tf.nest.map_structure(lambda t: t.numpy(), batch)
    np.testing.assert_array_equal(x["encoder_token_ids"], [[5, 0, 0, 0], [5, 6, 7, 0], [7, 7, 7, 7]])
    np.testing.assert_array_equal(x["decoder_token_ids"], [[BOS, 8, 9, 0], [BOS, 9, 0, 0], [BOS, 8, 8, 8]])
    np.testing.assert_array_equal(y["target_ids"], [[8, 9, EOS, 0], [9, EOS, 0, 0], [8, 8, 8, EOS]])
    np.testing.assert_array_equal(x["decoder_padding_mask"], y["target_mask"])
    np.testing.assert_array_equal(x["encoder_padding_mask"], x["encoder_token_ids"] != 0)

    # Training: endless, exact batch size, each batch from one length bucket.
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 9, size=n)) for n in rng.integers(1, 30, size=200)]
    train = parallel_text.translation_dataset(src, [s[::-1] for s in src], 8, training=True, bos_id=BOS,
                                              eos_id=EOS, seed=0, bucket_boundaries=[9, 17])
    for x, _ in train.take(30):
        lengths = np.maximum(x["encoder_padding_mask"].numpy().sum(1), x["decoder_padding_mask"].numpy().sum(1))
        assert lengths.shape == (8,)
        assert len({int(np.searchsorted([9, 17], n, side="right")) for n in lengths}) == 1


# ---- The recipe end to end -------------------------------------------------------


def test_translate_recipe_learns_to_reverse(tmp_path):
    """recipes/translate.py trains, evaluates BLEU and translates a toy reversal task."""
    rng = np.random.default_rng(0)
    letters = list("abcdefgh")

    def pairs(n):
        src = [" ".join(rng.choice(letters, size=rng.integers(3, 7))) for _ in range(n)]
        return src, [" ".join(s.split()[::-1]) for s in src]

    for split, n in (("train", 3000), ("val", 40)):
        src, tgt = pairs(n)
        (tmp_path / f"{split}.src").write_text("\n".join(src) + "\n")
        (tmp_path / f"{split}.tgt").write_text("\n".join(tgt) + "\n")
    model_dir = tmp_path / "model"
    args = ["recipes/translate.py", f"--model_dir={model_dir}",
            f"--train_source={tmp_path / 'train.src'}", f"--train_target={tmp_path / 'train.tgt'}",
            f"--eval_source={tmp_path / 'val.src'}", f"--eval_target={tmp_path / 'val.tgt'}",
            "--preset=transformer_tiny", "--vocab_size=20", "--batch_size=32", "--max_steps=250",
            "--warmup_steps=30", "--learning_rate=5e-3", "--dropout=0", "--label_smoothing=0.1",
            "--num_beams=2", "--log_every=100", "--checkpoint_every=250", "--strategy=cpu"]
    proc = run_script(*args, f"--export_dir={tmp_path / 'export'}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["bleu"] > 90, proc.stdout
    assert results["examples"] == 40 and results["num_beams"] == 2 and "nrefs:1" in results["signature"]

    # The export (tokenizer + beam search + detokenizer in one graph) translates the same, served through the
    # TF Serving REST format by a process that imports only TensorFlow and tensorflow_text; so do its warmup
    # requests.
    export = tmp_path / "export" / "translator" / "1"
    sources = (tmp_path / "val.src").read_text().splitlines()
    warmup = read_warmup_requests(str(export))
    assert [(signature, len(inputs["source"])) for signature, inputs in warmup] == [("serving_default", 1),
                                                                                 ("serving_default", 2)]
    replies = rest_predict_in_fresh_process([(export, {"inputs": {"source": sources}})] + [
        (export, {"inputs": {"source": [t.decode() for t in inputs["source"]]}}) for _, inputs in warmup])
    served = replies[0]["outputs"]
    assert served["translation"] == (model_dir / "eval_translations.txt").read_text().splitlines()
    assert len(served["score"]) == 40 and all(score < 0 for score in served["score"])
    assert [len(reply["outputs"]["translation"]) for reply in replies[1:]] == [1, 2], replies[1:]
    # Token accuracy of the reversal, position by position against the references: >= 99%.
    references = [line.split() for line in (tmp_path / "val.tgt").read_text().splitlines()]
    hits = sum(h == r for hyp, ref in zip(served["translation"], references) for h, r in zip(hyp.split(), ref))
    assert hits / sum(map(len, references)) >= 0.99, list(zip(served["translation"], references))

    proc = run_script(*args[:2], "--mode=translate", "--num_beams=1", "--strategy=cpu", input="a b c d\nh g f\n")
    assert proc.stdout.splitlines() == ["d c b a", "f g h"]
