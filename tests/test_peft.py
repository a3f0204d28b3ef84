"""tfllm.peft: LoRA, adapters and prefix tuning against numpy references; freezing, counts, save/load, merge, recipe."""

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference as ref
from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tests.test_classify_recipe import write_toy_tsv
from tfllm import peft
from tfllm.layers import FeedForward
from tfllm.layers import GroupedQueryAttention
from tfllm.layers import MultiHeadAttention
from tfllm.layers.attention import project
from tfllm.layers.rotary_embedding import apply_rotary_embedding
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import load
from tfllm.training import create_optimizer
from tfllm.training.init_checkpoint import restore_backbone

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5
# bert_nano: 1 layer, hidden 32, 2 heads of 16, intermediate 128, vocabulary 1000.
D, N, H, F = 32, 2, 16, 128


def randn(*shape, scale=1.0):
    return (np.random.default_rng(len(shape) + sum(shape)).standard_normal(shape) * scale).astype("float32")


def nano_classifier(seed=0, num_classes=2):
    keras.utils.set_random_seed(seed)
    return BertClassifier(Bert.from_preset("bert_nano", dropout=0.0), num_classes, dropout=0.0)


def nano_inputs():
    ids = np.random.default_rng(1).integers(5, 1000, (2, 7)).astype("int32")
    padding = np.ones((2, 7), bool)
    padding[1, 4:] = False
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": padding}


def randomize(variables, scale=0.1, seed=2):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign((rng.standard_normal(v.shape) * scale).astype("float32"))


def lora_factors(dense):
    """(A, B, alpha / rank) of either LoRA path."""
    if getattr(dense, "lora_enabled", False):
        return dense.lora_kernel_a.numpy(), dense.lora_kernel_b.numpy(), dense.lora_alpha / dense.lora_rank
    update = dense.lora_update
    return update.lora_a.numpy(), update.lora_b.numpy(), update.scale


# ---- LoRA --------------------------------------------------------------------


def test_lora_with_zero_b_leaves_outputs_unchanged():
    model, x = nano_classifier(), nano_inputs()
    before = model(x).numpy()
    peft.apply_peft(model, "lora", rank=4, alpha=8, targets="all")
    np.testing.assert_array_equal(model(x).numpy(), before)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_lora_projections_equal_numpy_w_plus_scaled_ab(dropout):
    """Every projection: x·(W + (alpha/r)·A·B) + b, with W read before LoRA; both the Keras and the own path."""
    mha, ffn = MultiHeadAttention(N, H), FeedForward(F)
    x = randn(2, 5, D)
    mha(x), ffn(x)
    base = {name: dense.kernel.numpy() for name, dense in projections(mha, ffn).items()}
    peft.add_lora(mha, rank=3, alpha=12, dropout=dropout, targets="attention")
    peft.add_lora(ffn, rank=3, alpha=12, dropout=dropout, targets="ffn")
    for name, dense in projections(mha, ffn).items():
        on_keras_path = getattr(dense, "lora_enabled", False)
        assert on_keras_path == (dropout == 0 and name in ("attention_output", "intermediate", "output")), name
        randomize([dense.lora_kernel_b if on_keras_path else dense.lora_update.lora_b])
        a, b, scale = lora_factors(dense)
        assert scale == 4.0
        k = 2 if name == "attention_output" else 1
        inputs = randn(2, 5, N, H) if k == 2 else randn(2, 5, F if name == "output" else D)
        kernel = base[name] + scale * np.tensordot(a, b, axes=1)
        want = np.tensordot(inputs, kernel, axes=k) + dense.bias.numpy()
        np.testing.assert_allclose(project(dense, inputs, training=False), want, atol=TOL, err_msg=name)


def projections(mha, ffn):
    return {"query": mha.query_dense, "key": mha.key_dense, "value": mha.value_dense,
            "attention_output": mha.output_dense, "intermediate": ffn.intermediate_dense, "output": ffn.output_dense}


def test_lora_dropout_drops_only_the_low_rank_path():
    ffn = FeedForward(F)
    x = randn(4, 6, D)
    ffn(x)
    peft.add_lora(ffn, rank=D, dropout=0.5, targets="ffn")  # full rank: the dropped input can be solved for
    dense = ffn.intermediate_dense
    randomize([dense.lora_update.lora_b])
    a, b, scale = lora_factors(dense)
    base = np.tensordot(x, dense.kernel.numpy(), axes=1) + dense.bias.numpy()
    dropped = project(dense, x, training=True).numpy() - base
    # Each input feature is either dropped (0) or kept and scaled by 1/(1-0.5) = 2 in the update.
    low_rank_inputs = np.linalg.lstsq((scale * a @ b).T, dropped.reshape(-1, F).T, rcond=None)[0].T
    kept = np.isclose(low_rank_inputs, 2 * x.reshape(-1, D), atol=1e-3)
    zero = np.isclose(low_rank_inputs, 0, atol=1e-3)
    assert (kept | zero).all() and 0.3 < kept.mean() < 0.7


def test_merged_lora_equals_unmerged_and_leaves_plain_weights(tmp_path):
    model, x = nano_classifier(), nano_inputs()
    peft.apply_peft(model, "lora", rank=4, alpha=8, targets="all")
    randomize(peft.peft_weights(model))
    unmerged = model(x).numpy()
    assert peft.merge_lora(model) == 6
    np.testing.assert_allclose(model(x).numpy(), unmerged, atol=1e-5)
    assert not [v.path for v in model.weights if "lora" in v.path]
    assert not any(getattr(layer, "lora_enabled", False) or getattr(layer, "lora_update", None) is not None
                   for layer in model._flatten_layers())
    # The merged weights are exactly a plain model's: same list, same outputs.
    plain = nano_classifier(seed=5)
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(plain(x).numpy(), unmerged, atol=1e-5)
    assert peft.merge_lora(model) == 0
    # Nor does TensorFlow's object graph (what checkpoints and SavedModels save) keep the LoRA weights.
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "merged"))
    saved = [name for name, _ in tf.train.list_variables(prefix)]
    assert any("kernel" in n for n in saved) and not [n for n in saved if "lora" in n.lower()]


# ---- Adapters and prefixes ------------------------------------------------------


def test_adapter_is_identity_at_init_and_matches_numpy():
    model, x = nano_classifier(), nano_inputs()
    before = model(x).numpy()
    peft.apply_peft(model, "adapter", size=8)
    np.testing.assert_array_equal(model(x).numpy(), before)  # up-projection starts at zero

    adapter = model.backbone.encoder_blocks[0].feed_forward.adapter
    randomize(adapter.weights)
    h = randn(2, 5, D)
    down, down_b, up, up_b = (w.numpy() for w in (adapter.down_kernel, adapter.down_bias, adapter.up_kernel,
                                                   adapter.up_bias))
    np.testing.assert_allclose(adapter(h), h + ref.gelu(h @ down + down_b) @ up + up_b, atol=TOL)
    assert np.abs(model(x).numpy() - before).max() > 1e-4  # changed only through the adapter weights


def test_prefix_attention_equals_numpy_attention_over_prefix_and_keys():
    mha = MultiHeadAttention(N, H, name="self_attention")
    x = randn(2, 5, D)
    mha(x)
    randomize(mha.weights, scale=0.3)
    peft.add_prefix(mha, length=3)
    randomize(mha.prefix.weights, scale=1.0, seed=3)
    padding = np.ones((2, 5), bool)
    padding[1, 3:] = False
    got = mha(x, attention_mask=padding[:, None, None, :])

    w = {dense.name: dense.kernel.numpy() for dense in (mha.query_dense, mha.key_dense, mha.value_dense,
                                                         mha.output_dense)}
    q = np.einsum("btd,dnh->btnh", x, w["query"]) + mha.query_dense.bias.numpy()
    k = np.einsum("btd,dnh->btnh", x, w["key"]) + mha.key_dense.bias.numpy()
    v = np.einsum("btd,dnh->btnh", x, w["value"]) + mha.value_dense.bias.numpy()
    pk, pv = mha.prefix.prefix_key.numpy(), mha.prefix.prefix_value.numpy()
    k = np.concatenate([np.broadcast_to(pk, (2,) + pk.shape), k], axis=1)
    v = np.concatenate([np.broadcast_to(pv, (2,) + pv.shape), v], axis=1)
    mask = np.concatenate([np.ones((2, 3), bool), padding], axis=1)[:, None, None, :]
    attended = ref.attention(q, k, v, mask)
    want = np.einsum("btnh,nhd->btd", attended, w["attention_output"]) + mha.output_dense.bias.numpy()
    np.testing.assert_allclose(got, want, atol=TOL)


def test_grouped_query_prefix_has_one_prefix_per_key_value_head():
    """Llama-style attention: each key/value head's prefix is shared by its query heads, as its keys and values."""
    gqa = GroupedQueryAttention(num_heads=4, key_dim=8, num_key_value_heads=2, name="self_attention")
    x = randn(2, 5, 32)
    gqa(x)
    randomize(gqa.weights, scale=0.3)
    peft.add_prefix(gqa, length=3)
    assert tuple(gqa.prefix.prefix_key.shape) == (3, 2, 8)  # key/value heads, not query heads
    randomize(gqa.prefix.weights, scale=1.0, seed=3)
    padding = np.ones((2, 5), bool)
    padding[1, 3:] = False
    got = gqa(x, attention_mask=padding[:, None, None, :])

    q, k, v = (t.numpy() for t in gqa.project_query_key_value(x))  # projections and RoPE: tests/test_llama.py
    q, k = (apply_rotary_embedding(t, gqa.inv_freq, 0).numpy() for t in (q, k))
    pk, pv = gqa.prefix.prefix_key.numpy(), gqa.prefix.prefix_value.numpy()
    k = np.concatenate([np.broadcast_to(pk, (2,) + pk.shape), k], axis=1)
    v = np.concatenate([np.broadcast_to(pv, (2,) + pv.shape), v], axis=1)
    mask = np.concatenate([np.ones((2, 3), bool), padding], axis=1)[:, None, None, :]
    attended = ref.attention(q, np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2), mask)  # query head n: kv n // 2
    want = np.einsum("btnh,nhd->btd", attended, gqa.output_dense.kernel.numpy())
    np.testing.assert_allclose(got, want, atol=TOL)


# ---- Freezing, counting -----------------------------------------------------------


@pytest.mark.parametrize("method,options", [("lora", dict(rank=4)), ("adapter", dict(size=8)),
                                            ("prefix", dict(length=3))])
def test_training_steps_change_only_peft_weights_and_head(method, options):
    model, x = nano_classifier(), nano_inputs()
    labels = np.array([0, 1])
    peft.apply_peft(model, method, **options)
    trainable = {v.path for v in model.trainable_weights}
    assert trainable == {v.path for v in peft.peft_weights(model)} | {"logits/kernel", "logits/bias"}
    before = {v.path: v.numpy().copy() for v in model.weights}
    optimizer = create_optimizer(1e-2, total_steps=10, warmup_steps=0, weight_decay=0.0)
    for _ in range(2):  # LoRA's A and the adapters' down-projection get gradients from the second step on.
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(labels, model(x, training=True), from_logits=True)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    for v in model.weights:
        changed = not np.array_equal(v.numpy(), before[v.path])
        assert changed == (v.path in trainable), v.path


def test_trainable_parameter_counts_match_a_hand_count():
    head = D * 2 + 2
    base = nano_classifier()
    _, base_total = peft.count_parameters(base)
    r, m, p = 4, 8, 3
    lora_all = 4 * (D * r + r * D) + (D * r + r * F) + (F * r + r * D)  # q, k, v, attention output; FFN in, out
    expected = {
        ("lora", "attention"): 4 * (D * r + r * D),
        ("lora", "all"): lora_all,
        ("adapter", None): 2 * (2 * D * m + D + m),
        ("prefix", None): 2 * p * N * H,
    }
    for (method, targets), added in expected.items():
        model = nano_classifier()
        options = dict(rank=r, targets=targets) if method == "lora" else {"adapter": dict(size=m)}.get(
            method, dict(length=p))
        peft.apply_peft(model, method, **options)
        assert peft.count_parameters(model) == (added + head, base_total + added), (method, targets)
    full = nano_classifier()
    peft.apply_peft(full, "none")
    assert peft.count_parameters(full) == (base_total, base_total)


# ---- Saving and loading ---------------------------------------------------------------


def test_peft_weights_round_trip_onto_a_fresh_base(tmp_path):
    x = nano_inputs()
    base = nano_classifier(seed=0)
    base_weights = base.get_weights()
    peft.apply_peft(base, "lora", rank=4, alpha=8, dropout=0.1, targets="query,value,ffn")
    randomize(base.trainable_weights)
    want = base(x).numpy()
    path = tmp_path / "peft.npz"
    peft.save_peft_weights(base, str(path))
    stored = np.load(path)
    assert len(stored.files) == len(base.trainable_weights) + 1  # + config; no frozen weights

    assert peft.read_peft_config(str(path)) == peft.peft_config(base)
    fresh = nano_classifier(seed=7)  # different random head and backbone...
    fresh.set_weights(base_weights)  # ...then the same base checkpoint
    assert peft.load_peft_weights(fresh, str(path))["method"] == "lora"
    np.testing.assert_allclose(fresh(x).numpy(), want, atol=1e-6)

    wrong_head = nano_classifier(num_classes=3)
    with pytest.raises(ValueError, match=r"different shapes: logits/bias: file \(2,\), model \(3,\)"):
        peft.load_peft_weights(wrong_head, str(path))
    other_method = nano_classifier()
    peft.apply_peft(other_method, "adapter", size=8)
    with pytest.raises(ValueError, match="holds PEFT .*'lora'.* but the model has .*'adapter'"):
        peft.load_peft_weights(other_method, str(path))


# ---- Recipe ------------------------------------------------------------------------------


def test_classify_recipe_with_lora_trains_and_logs_parameter_counts(tmp_path):
    write_toy_tsv(tmp_path / "train.tsv", 640, seed=0)
    write_toy_tsv(tmp_path / "dev.tsv", 200, seed=1)
    model_dir = tmp_path / "model"
    proc = run_script(
        "recipes/classify.py",
        f"--train_file={tmp_path / 'train.tsv'}", f"--eval_file={tmp_path / 'dev.tsv'}", f"--model_dir={model_dir}",
        "--preset=bert_nano", "--vocab_size=120", "--max_seq_length=16", "--batch_size=32", "--epochs=15",
        "--learning_rate=2e-2", "--dropout=0.0", "--pooling=mean", "--strategy=cpu", "--log_every=60",
        "--peft=lora", "--lora_rank=4", "--lora_alpha=8", "--lora_targets=query,value",
        f"--export_dir={tmp_path / 'export'}", "--model_name=toy", "--label_names=negative,positive",
    )
    line = re.search(r"PEFT .*'method': 'lora'.*: ([\d,]+) trainable of ([\d,]+) parameters \(([\d.]+)%\)",
                     proc.stderr)
    assert line, proc.stderr[-3000:]
    trainable, total = (int(g.replace(",", "")) for g in line.groups()[:2])
    assert trainable == 2 * (D * 4 + 4 * D) + D * 2 + 2  # query and value LoRA, head
    assert float(line.group(3)) == pytest.approx(100 * trainable / total, abs=0.01)
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["accuracy"] > 0.85, results  # 0.945 when written
    assert (model_dir / "peft_weights.npz").exists()

    # The export has LoRA merged into plain kernels and serves what the unmerged model computes.
    export = tmp_path / "export" / "toy" / "1"
    exported = [tuple(shape) for name, shape in tf.train.list_variables(str(export / "variables" / "variables"))
                if name.startswith("model_variables/")]
    run = load(str(model_dir))  # config.json + model.weights.h5, LoRA layers re-applied
    unmerged, preprocessor = run.model, run.preprocessor()
    lora = [v for v in unmerged.weights if "lora" in v.path]
    assert lora and not [n for n, _ in tf.train.list_variables(str(export / "variables" / "variables"))
                         if "lora" in n.lower()]
    # Exactly the plain model's variables: no LoRA factor went into the SavedModel.
    assert sorted(exported) == sorted(tuple(v.shape) for v in unmerged.weights if "lora" not in v.path)
    texts = ["the plot was really good", "a boring film", "quite a dull story , the acting was lovely"]
    want = tf.nn.softmax(unmerged(preprocessor(tf.constant(texts)))).numpy()
    served = serve_in_fresh_process(export, {"text": texts})
    np.testing.assert_allclose(np.array(served["probabilities"]), want, atol=1e-5, rtol=0)


def test_init_checkpoint_from_a_peft_run_is_refused(tmp_path):
    """A --peft run's checkpoint holds only the frozen base: initialising from it would drop the adaptation."""
    (tmp_path / "peft_weights.npz").write_bytes(b"")
    backbone = Bert(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    with pytest.raises(ValueError, match="is a --peft run"):
        restore_backbone(backbone, str(tmp_path))
