"""Layer numerics against the numpy reference, masking invariances, and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests import numpy_reference as ref
from tfllm.layers import EinsumDense
from tfllm.layers import FeedForward
from tfllm.layers import GroupedQueryAttention
from tfllm.layers import MultiHeadAttention
from tfllm.layers import SinusoidalPositionEmbedding
from tfllm.layers import TransformerDecoderBlock
from tfllm.layers import TransformerEmbedding
from tfllm.layers import TransformerEncoderBlock
from tfllm.layers import scaled_dot_product_attention
from tfllm.layers.attention import grouped_query_attention

TOL = 1e-5
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype("float32")


def attention_weights(layer):
    return {
        "wq": layer.query_dense.kernel.numpy(), "bq": layer.query_dense.bias.numpy(),
        "wk": layer.key_dense.kernel.numpy(), "bk": layer.key_dense.bias.numpy(),
        "wv": layer.value_dense.kernel.numpy(), "bv": layer.value_dense.bias.numpy(),
        "wo": layer.output_dense.kernel.numpy(), "bo": layer.output_dense.bias.numpy(),
    }


def block_weights(block):
    def ln(norm):
        return norm.gamma.numpy(), norm.beta.numpy()

    ffn = block.feed_forward
    return {
        "attn": attention_weights(block.self_attention),
        "ffn": {
            "w1": ffn.intermediate_dense.kernel.numpy(), "b1": ffn.intermediate_dense.bias.numpy(),
            "w2": ffn.output_dense.kernel.numpy(), "b2": ffn.output_dense.bias.numpy(),
        },
        "ln1": ln(block.self_attention_layer_norm),
        "ln2": ln(block.feed_forward_layer_norm),
    }


def randomize(layer):
    """Non-trivial weights everywhere (biases and LayerNorm params too)."""
    for w in layer.weights:
        w.assign(randn(*w.shape) * 0.3 + (1.0 if w.name == "gamma" else 0.0))


def test_scaled_dot_product_attention_matches_numpy():
    q, k, v = randn(2, 5, 3, 4), randn(2, 7, 3, 4), randn(2, 7, 3, 4)
    mask = rng.random((2, 1, 5, 7)) > 0.3
    mask[..., 0] = True  # every query sees at least one key
    got = scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(got, ref.attention(q, k, v, mask), atol=TOL)


def test_attention_dropout_path_equals_fused_path_at_rate_zero_behaviour():
    # The explicit dropout path must compute the same function as keras.ops.dot_product_attention.
    q, k, v = randn(2, 5, 2, 4), randn(2, 6, 2, 4), randn(2, 6, 2, 4)
    mask = np.tril(np.ones((5, 6), bool))[None, None]
    dropout = keras.layers.Dropout(1e-9)  # active in training, numerically a no-op
    explicit = scaled_dot_product_attention(q, k, v, mask=mask, dropout=dropout, training=True)
    np.testing.assert_allclose(explicit, ref.attention(q, k, v, mask), atol=TOL)


@pytest.mark.parametrize("mask_heads", [1, 6], ids=["shared-mask", "per-head-mask"])
def test_grouped_query_attention_equals_repeated_key_value_heads(mask_heads):
    # 6 query heads over 2 key/value heads: query head n uses key/value head n // 3 (Hugging Face's repeat_kv).
    q, k, v = randn(2, 5, 6, 4), randn(2, 7, 2, 4), randn(2, 7, 2, 4)
    mask = rng.random((2, mask_heads, 5, 7)) > 0.3
    mask[..., 0] = True
    want = ref.attention(q, np.repeat(k, 3, axis=2), np.repeat(v, 3, axis=2), mask)
    np.testing.assert_allclose(grouped_query_attention(q, k, v, mask=mask), want, atol=TOL)
    dropout = keras.layers.Dropout(1e-9)  # the training path: active, numerically a no-op
    np.testing.assert_allclose(grouped_query_attention(q, k, v, mask=mask, dropout=dropout, training=True), want,
                               atol=TOL)


@pytest.mark.parametrize("bias", [False, True])
def test_grouped_query_projections_fused_equal_separate(bias):
    layer = GroupedQueryAttention(num_heads=4, key_dim=8, num_key_value_heads=2, use_bias=bias)
    x = randn(2, 3, 32)
    layer(x)
    for w in layer.weights:
        w.assign(randn(*w.shape))
    for fused, separate in zip(layer.project_query_key_value(x, fuse=True), layer.project_query_key_value(x)):
        assert tuple(fused.shape) == tuple(separate.shape)
        np.testing.assert_allclose(fused, separate, atol=1e-4)


def test_multi_head_attention_matches_numpy_self_and_cross():
    layer = MultiHeadAttention(num_heads=4, key_dim=8)
    x, memory = randn(2, 6, 32), randn(2, 9, 32)
    layer(x, memory)
    randomize(layer)
    padding = np.ones((2, 9), bool)
    padding[1, 5:] = False
    mask = padding[:, None, None, :]
    got = layer(x, memory, attention_mask=mask)
    want = ref.multi_head_attention(attention_weights(layer), x, memory, mask)
    np.testing.assert_allclose(got, want, atol=TOL)


@pytest.mark.parametrize("equation,in_shape,kernel_shape,out_shape,bias_axes", [
    ("btd,dnh->btnh", (3, 5, 8), (8, 2, 4), (None, 2, 4), "nh"),
    ("btnh,nhd->btd", (3, 5, 2, 4), (2, 4, 8), (None, 8), "d"),
])
def test_einsum_dense_matches_numpy_with_static_shapes_and_lora(equation, in_shape, kernel_shape, out_shape,
                                                                  bias_axes):
    # tfllm's EinsumDense swaps Keras' contraction for tf.einsum (speed); it
    # must compute the same thing in a traced function with known shapes,
    # including the LoRA update Keras folds into `kernel`.
    layer = EinsumDense(equation, output_shape=out_shape, bias_axes=bias_axes)
    layer.build(in_shape)
    layer.bias.assign(randn(*layer.bias.shape))
    x = randn(*in_shape)
    traced = tf.function(layer, input_signature=[tf.TensorSpec(in_shape, tf.float32)])
    expected = np.einsum(equation, x, layer.kernel.numpy()) + layer.bias.numpy()
    np.testing.assert_allclose(traced(x).numpy(), expected, atol=TOL)
    layer.enable_lora(2)
    layer.lora_kernel_b.assign(randn(*layer.lora_kernel_b.shape))
    merged = layer._kernel.numpy() + np.reshape(
        layer.lora_kernel_a.numpy() @ layer.lora_kernel_b.numpy() * (layer.lora_alpha / layer.lora_rank),
        kernel_shape)
    np.testing.assert_allclose(layer(x).numpy(), np.einsum(equation, x, merged) + layer.bias.numpy(), atol=1e-4)


@pytest.mark.parametrize("activation,fn", [("gelu", ref.gelu), ("gelu_approximate", ref.gelu_tanh),
                                           ("relu", lambda x: np.maximum(x, 0))])
def test_feed_forward_matches_numpy(activation, fn):
    layer = FeedForward(64, activation=activation)
    x = randn(2, 3, 16)
    layer(x)
    randomize(layer)
    w = {"w1": layer.intermediate_dense.kernel.numpy(), "b1": layer.intermediate_dense.bias.numpy(),
         "w2": layer.output_dense.kernel.numpy(), "b2": layer.output_dense.bias.numpy()}
    np.testing.assert_allclose(layer(x), ref.feed_forward(w, x, fn), atol=TOL)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_block_matches_numpy(normalize_first):
    block = TransformerEncoderBlock(num_heads=4, intermediate_dim=64, layer_norm_epsilon=1e-12,
                                    normalize_first=normalize_first)
    x = randn(2, 7, 32)
    padding = np.ones((2, 7), bool)
    padding[0, 4:] = False
    block(x, padding_mask=padding)
    randomize(block)
    got = block(x, padding_mask=padding)
    want = ref.encoder_block(block_weights(block), x, padding[:, None, None, :], 1e-12,
                             normalize_first=normalize_first)
    np.testing.assert_allclose(got, want, atol=TOL)


def test_padding_never_changes_real_positions():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=32)
    x = randn(1, 8, 16)
    padding = np.array([[True] * 5 + [False] * 3])
    base = block(x, padding_mask=padding).numpy()
    x2 = x.copy()
    x2[:, 5:] = randn(1, 3, 16) * 10  # different garbage at padded positions
    changed = block(x2, padding_mask=padding).numpy()
    np.testing.assert_allclose(changed[:, :5], base[:, :5], atol=TOL)
    # And the real positions equal a run on the unpadded sequence alone.
    alone = block(x[:, :5]).numpy()
    np.testing.assert_allclose(base[:, :5], alone, atol=TOL)


def test_causal_mask_future_never_changes_past():
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32, normalize_first=True)
    x = randn(2, 10, 16)
    base = block(x).numpy()
    for t in (0, 4, 8):
        x2 = x.copy()
        x2[:, t + 1:] = randn(2, 9 - t, 16)
        np.testing.assert_allclose(block(x2).numpy()[:, : t + 1], base[:, : t + 1], atol=TOL)
    # The last position does see the past: the test above is not vacuous.
    x3 = x.copy()
    x3[:, 0] += randn(2, 16)  # not a constant shift: LayerNorm would remove that
    assert np.abs(block(x3).numpy()[:, -1] - base[:, -1]).max() > 1e-3


def test_decoder_self_attention_cache_matches_full_pass():
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32)
    x, memory = randn(2, 6, 16), randn(2, 4, 16)
    full = block(x, memory).numpy()
    cache = (np.zeros((2, 6, 2, 8), "float32"), np.zeros((2, 6, 2, 8), "float32"))  # keys, values
    cross = block.compute_cross_attention_cache(memory)
    steps = []
    for t in range(6):
        out, cache = block(x[:, t:t + 1], self_attention_cache=cache,
                           self_attention_cache_update_index=t, cross_attention_cache=cross)
        steps.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=TOL)


def test_decoder_cross_attention_depends_on_source():
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32)
    x, memory = randn(1, 3, 16), randn(1, 4, 16)
    a = block(x, memory).numpy()
    b = block(x, memory + 1.0).numpy()
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="cross-attention"):
        block(x)


def test_sinusoidal_position_embedding_matches_formula():
    d, n = 8, 5
    got = SinusoidalPositionEmbedding()(np.zeros((1, n, d), "float32")).numpy()[0]
    pos = np.arange(n)[:, None]
    freq = 1.0 / 10000 ** (2 * np.arange(d // 2) / d)
    want = np.zeros((n, d))
    want[:, 0::2] = np.sin(pos * freq)
    want[:, 1::2] = np.cos(pos * freq)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_bert_embedding_sums_token_position_segment_then_normalizes():
    layer = TransformerEmbedding(50, 16, 12, num_segments=2, layer_norm_epsilon=1e-12)
    ids = np.array([[3, 7, 9]], "int32")
    seg = np.array([[0, 1, 1]], "int32")
    layer(ids, seg)
    randomize(layer)
    tok = layer.token_embedding.embeddings.numpy()[ids[0]]
    pos = layer.position_layer.position_embeddings.numpy()[:3]
    segm = layer.segment_embedding.embeddings.numpy()[seg[0]]
    want = ref.layer_norm(tok + pos + segm, layer.norm.gamma.numpy(), layer.norm.beta.numpy(), 1e-12)
    np.testing.assert_allclose(layer(ids, seg).numpy()[0], want, atol=TOL)


@pytest.mark.parametrize("make", [
    lambda: MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1),
    lambda: FeedForward(32, activation="relu"),
    lambda: TransformerEncoderBlock(2, 32, dropout=0.1, normalize_first=True),
    lambda: TransformerDecoderBlock(2, 32, layer_norm_epsilon=1e-5),
    lambda: TransformerEmbedding(40, 16, 12, num_segments=2, position_embedding="sinusoidal"),
])
def test_layers_round_trip_through_config(make):
    layer = make()
    restored = layer.__class__.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerEncoderBlock(num_heads=3, intermediate_dim=8)(randn(1, 2, 16))
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(8, activation="swishy")
    with pytest.raises(ValueError, match="position_embedding"):
        TransformerEmbedding(10, 8, 8, position_embedding="rotary")


def test_keras_mask_propagates_as_padding_mask():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=32)
    ids = np.array([[4, 5, 6, 0, 0]])
    embedded = keras.layers.Embedding(10, 16, mask_zero=True)
    x = embedded(ids)
    via_keras_mask = block(x, mask=embedded.compute_mask(ids)).numpy()
    explicit = block(x, padding_mask=ids != 0).numpy()
    np.testing.assert_allclose(via_keras_mask, explicit, atol=0)
    assert ops.convert_to_numpy(block.compute_output_shape((1, 5, 16))) is not None
