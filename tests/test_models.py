"""Model-level tests: presets, numerics vs numpy, save/load, mixed precision, weight tying, cache."""

import keras
import numpy as np
import pytest

from tests import numpy_reference as ref
from tests.test_layers import block_weights
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import Gpt
from tfllm.models import GptCausalLM

rng = np.random.default_rng(1)


def bert_inputs(batch=2, length=7, vocab=1000, pad_from=5):
    ids = rng.integers(5, vocab, (batch, length)).astype("int32")
    mask = np.ones((batch, length), bool)
    mask[-1, pad_from:] = False
    ids[~mask] = 0
    seg = np.zeros((batch, length), "int32")
    seg[:, 3:] = 1
    return {"token_ids": ids, "segment_ids": seg, "padding_mask": mask}


def gpt_inputs(batch=2, length=9, vocab=1000):
    return {"token_ids": rng.integers(0, vocab, (batch, length)).astype("int32"),
            "padding_mask": np.ones((batch, length), bool)}


# V vocabulary, L layers, H hidden width, F feed-forward (intermediate) width, P positions, S segments.
def bert_param_count(V, L, H, F, P=512, S=2):
    embeddings = V * H + P * H + S * H + 2 * H
    layer = 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H
    return embeddings + L * layer + (H * H + H)


def gpt_param_count(V, L, H, F, P=1024):
    layer = 2 * H + 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H)
    return V * H + P * H + L * layer + 2 * H


def test_param_formulas_match_published_sizes():
    # Published: bert-base-uncased BertModel 109,482,240; GPT-2 small 124,439,808.
    assert bert_param_count(30522, 12, 768, 3072) == 109_482_240
    assert gpt_param_count(50257, 12, 768, 3072) == 124_439_808


@pytest.mark.parametrize("preset", ["bert_tiny", "bert_mini"])
def test_bert_presets_have_published_shapes(preset):
    model = Bert.from_preset(preset)
    c = Bert.presets[preset]
    assert model.count_params() == bert_param_count(
        c["vocabulary_size"], c["num_layers"], c["hidden_dim"], c["intermediate_dim"])


def test_gpt_preset_param_count():
    model = Gpt.from_preset("gpt_nano")
    c = Gpt.presets["gpt_nano"]
    assert model.count_params() == gpt_param_count(
        c["vocabulary_size"], c["num_layers"], c["hidden_dim"], c["intermediate_dim"], P=128)


def test_all_presets_are_consistent():
    for presets in (Bert.presets, Gpt.presets):
        for name, c in presets.items():
            assert c["hidden_dim"] % c["num_heads"] == 0, name
    assert {"bert_tiny", "bert_mini", "bert_small", "bert_medium", "bert_base", "bert_large"} <= set(Bert.presets)
    assert {"gpt2", "gpt2_medium", "gpt2_large", "gpt2_xl"} <= set(Gpt.presets)
    with pytest.raises(ValueError, match="Unknown Bert preset 'bert_huge'.*bert_base"):
        Bert.from_preset("bert_huge")


def test_bert_matches_numpy_reference():
    model = Bert.from_preset("bert_nano", num_layers=2, dropout=0.1)
    for w in model.weights:  # non-trivial LayerNorm/bias values
        w.assign(rng.standard_normal(w.shape).astype("float32") * 0.2 + (1.0 if w.name == "gamma" else 0.0))
    x = bert_inputs()
    out = model(x)
    emb = model.embeddings
    h = (emb.token_embedding.embeddings.numpy()[x["token_ids"]]
         + emb.position_layer.position_embeddings.numpy()[None, :7]
         + emb.segment_embedding.embeddings.numpy()[x["segment_ids"]])
    h = ref.layer_norm(h, emb.norm.gamma.numpy(), emb.norm.beta.numpy(), 1e-12)
    mask = x["padding_mask"][:, None, None, :]
    for block in model.encoder_blocks:
        h = ref.encoder_block(block_weights(block), h, mask, 1e-12)
    pooled = np.tanh(h[:, 0] @ model.pooler.kernel.numpy() + model.pooler.bias.numpy())
    np.testing.assert_allclose(out["sequence_output"], h, atol=1e-4)
    np.testing.assert_allclose(out["pooled_output"], pooled, atol=1e-5)


def test_gpt_lm_logits_are_tied_to_token_embedding():
    lm = GptCausalLM(Gpt.from_preset("gpt_nano", dropout=0.0))
    x = gpt_inputs()
    hidden = lm.backbone(x).numpy()
    want = hidden @ lm.backbone.token_embedding.embeddings.numpy().T
    np.testing.assert_allclose(lm(x).numpy(), want, atol=1e-4)
    assert len(lm.trainable_weights) == len(lm.backbone.trainable_weights)  # no separate output matrix


def test_gpt_cached_decoding_equals_full_forward():
    lm = GptCausalLM(Gpt.from_preset("gpt_nano", dropout=0.0))
    x = gpt_inputs(length=12)
    full = lm(x).numpy()
    cache = lm.init_cache(2, 12)
    logits, _, cache = lm.call_with_cache(x["token_ids"][:, :5], cache, 0)  # prompt in one chunk
    steps = [logits.numpy()]
    for t in range(5, 12):
        logits, _, cache = lm.call_with_cache(x["token_ids"][:, t:t + 1], cache, t)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-4)


@pytest.mark.parametrize("build", ["bert", "classifier", "gpt_lm"])
def test_save_and_load_give_identical_outputs(build, tmp_path):
    if build == "bert":
        model, x = Bert.from_preset("bert_nano"), bert_inputs()
    elif build == "classifier":
        model, x = BertClassifier(Bert.from_preset("bert_nano"), num_classes=3, pooling="mean"), bert_inputs()
    else:
        model, x = GptCausalLM(Gpt.from_preset("gpt_nano")), gpt_inputs()
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), model(x), restored(x)
    )
    again = model.__class__.from_config(model.get_config())
    assert again.get_config() == model.get_config()


def test_mixed_bfloat16_builds_and_logits_are_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        clf = BertClassifier(Bert.from_preset("bert_nano"), num_classes=2)
        lm = GptCausalLM(Gpt.from_preset("gpt_nano"))
        logits = clf(bert_inputs())
        lm_logits = lm(gpt_inputs())
        cached, _, _ = lm.call_with_cache(gpt_inputs()["token_ids"][:, :3], lm.init_cache(2, 8), 0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert clf.backbone.compute_dtype == "bfloat16"
    assert clf.backbone.encoder_blocks[0].self_attention.query_dense.kernel.dtype == "float32"
    for t in (logits, lm_logits, cached):
        assert keras.backend.standardize_dtype(t.dtype) == "float32"
        assert np.isfinite(np.asarray(t)).all()


def test_bad_classifier_pooling():
    with pytest.raises(ValueError, match="pooling"):
        BertClassifier(Bert.from_preset("bert_nano"), 2, pooling="max")


@pytest.mark.parametrize("separator_length", [1, 2])
def test_pack_segments_equals_keras_hub_packer(separator_length):
    """`pack_segments` (BERT's and RoBERTa's layout in a few ops) against keras-hub's MultiSegmentPacker, which it
    replaces for speed: random ragged segments, single and pairs, every sequence length from no room to plenty."""
    import keras_hub  # noqa: PLC0415  (the reference only)
    import tensorflow as tf  # noqa: PLC0415

    from tfllm.models.bert.segment_packing import pack_segments  # noqa: PLC0415

    def ragged(rows):
        return tf.ragged.constant([list(rng.integers(5, 100, rng.integers(0, 20))) for _ in range(rows)],
                                  dtype=tf.int32, ragged_rank=1)

    for length in (2 + 2 * separator_length, 5, 8, 13, 40):
        reference = keras_hub.layers.MultiSegmentPacker(
            sequence_length=length, start_value=2, end_value=3, pad_value=0, truncate="waterfall",
            sep_value=None if separator_length == 1 else [3] * separator_length)
        for segments in ((ragged(9),), (ragged(9), ragged(9)), (tf.constant([7, 8, 9, 10, 11, 12]),)):
            expected_ids, expected_segments = reference(segments)
            ids, segment_ids = pack_segments(segments, length, 2, 3, 0, separator_length)
            np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy(), err_msg=f"length {length}")
            np.testing.assert_array_equal(segment_ids.numpy(), expected_segments.numpy(), err_msg=f"length {length}")
