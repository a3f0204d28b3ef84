"""Tests for tfllm.training: schedule, weight decay, resume, accumulation, NaN guard.

Multi-replica checks (Mirrored over 2 logical CPUs) need the devices split
before TensorFlow starts, so they run in a subprocess: tests/scripts/mirrored_check.py.
"""

import json
import logging
import math
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.errors import ConfigError
from tfllm.errors import DivergedError
from tfllm.layers import RMSNorm
from tfllm.training import Trainer
from tfllm.training import create_learning_rate_schedule
from tfllm.training import create_optimizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
import tiny_training as tt

BATCH = 8


def make_trainer(model_dir, steps=10, ema_momentum=None, **kwargs):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=steps, warmup_steps=2, ema_momentum=ema_momentum)
    kwargs.setdefault("global_batch_size", BATCH)
    return Trainer(
        model, optimizer, kwargs.pop("loss_fn", tt.loss_fn),
        model_dir=str(model_dir), strategy=strategy,
        metric_fns={"accuracy": tt.accuracy_fn}, log_every=5, **kwargs,
    )


def max_weight_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(a.get_weights(), b.get_weights())
    )


# ---- optimizer.py -----------------------------------------------------------


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_schedule_matches_numpy(decay):
    peak, warmup, total, end = 1e-3, 10, 110, 1e-4
    schedule = create_learning_rate_schedule(peak, total, warmup, decay, end)

    def reference(step):
        if step < warmup:
            return peak * step / warmup
        progress = min(step - warmup, total - warmup) / (total - warmup)
        if decay == "linear":
            return end + (peak - end) * (1 - progress)
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))

    for step in [0, 1, 5, 9, 10, 11, 50, 109, 110, 200]:
        assert float(schedule(step)) == pytest.approx(reference(step), rel=1e-5, abs=1e-10)
    # Serializable: a config round trip gives the same schedule.
    config = keras.optimizers.schedules.serialize(schedule)
    again = keras.optimizers.schedules.deserialize(config)
    assert float(again(42)) == pytest.approx(float(schedule(42)), rel=1e-6)


def test_a_run_without_steps_is_refused_and_a_long_warmup_is_cut(caplog):
    for total in (0, -3):
        with pytest.raises(ConfigError, match=rf"^total_steps={total}: the run has no training step \("):
            create_optimizer(1e-3, total_steps=total, warmup_steps=0)
    with pytest.raises(ConfigError, match=r"^warmup_steps=-1: must be >= 0$"):
        create_optimizer(1e-3, total_steps=10, warmup_steps=-1)
    caplog.set_level(logging.WARNING, logger="absl")
    peak, total = 1e-3, 5
    for warmup in (5, 50):
        caplog.clear()
        for decay in ("linear", "cosine"):
            schedule = create_learning_rate_schedule(peak, total, warmup, decay)
            # Cut to 4 warmup steps: peak * step / 4 up to the peak at step 4, then 0 at the end.
            expected = [0.0, peak / 4, peak / 2, 3 * peak / 4, peak, 0.0]
            np.testing.assert_allclose([float(schedule(s)) for s in range(6)], expected, rtol=1e-5, atol=1e-10)
        assert caplog.messages == [f"warmup_steps={warmup} is not shorter than the run (total_steps=5): "
                                   "warming up for 4 steps"] * 2
    caplog.clear()
    create_optimizer(1e-3, total_steps=1, warmup_steps=0)  # the shortest run: no warmup, nothing logged
    assert caplog.messages == []


def numpy_adamw(params, grads_per_step, lrs, decayed, wd, clipnorm, beta_1=0.9, beta_2=0.999, eps=1e-6,
                amsgrad=False):
    """`torch.optim.AdamW`'s update (decay first, epsilon after bias correction) after global-norm clipping."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    v_max = {k: np.zeros_like(x) for k, x in params.items()}
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
        scale = min(1.0, clipnorm / norm)
        for k, g in grads.items():
            g = g * scale
            if k in decayed:
                params[k] -= lr * wd * params[k]
            m[k] = beta_1 * m[k] + (1 - beta_1) * g
            v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
            v_max[k] = np.maximum(v_max[k], v[k])
            second = v_max[k] if amsgrad else v[k]
            params[k] -= lr / (1 - beta_1**t) * m[k] / (np.sqrt(second / (1 - beta_2**t)) + eps)
    return params


@pytest.mark.parametrize("amsgrad", [False, True], ids=["fused", "amsgrad"])
def test_adamw_update_matches_numpy(amsgrad):
    """Five updates of a model with an embedding (IndexedSlices gradients), a kernel and a bias, against
    numpy's AdamW: warmup schedule, decay on the kernel and embedding only, clipping by the global norm.
    amsgrad has no fused kernel and takes the written-out path."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(10, 4, name="embedding")(inputs)
    outputs = keras.layers.Dense(2, bias_initializer="ones", name="dense")(x)
    model = keras.Model(inputs, outputs)
    optimizer = create_optimizer(0.05, total_steps=20, warmup_steps=2, weight_decay=0.1, clipnorm=0.5, epsilon=0.01)
    if amsgrad:
        optimizer.amsgrad = True
    start = {v.path: v.numpy() for v in model.trainable_variables}
    rng = np.random.default_rng(0)
    grads_per_step, lrs = [], []
    for _ in range(5):
        ids = rng.integers(0, 10, (4, 3)).astype("int32")
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(ids) * rng.normal(size=(4, 3, 2)).astype("float32"))
        grads = tape.gradient(loss, model.trainable_variables)
        assert isinstance(grads[0], tf.IndexedSlices)  # the embedding's: rows of the ids seen
        grads_per_step.append({v.path: tf.convert_to_tensor(g).numpy() for v, g in zip(model.trainable_variables,
                                                                                          grads)})
        lrs.append(float(optimizer.learning_rate))
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    expected = numpy_adamw(start, grads_per_step, lrs, {"embedding/embeddings", "dense/kernel"}, 0.1, 0.5,
                           eps=0.01, amsgrad=amsgrad)  # an epsilon that shows where it is added
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.025) and lrs[2] == pytest.approx(0.05)
    for variable in model.trainable_variables:
        np.testing.assert_allclose(variable.numpy(), expected[variable.path], rtol=1e-5, atol=1e-6,
                                   err_msg=variable.path)
        assert not np.allclose(variable.numpy(), start[variable.path])  # every variable moved


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_variables_update_like_float32_ones(dtype):
    """Three updates of a 16-bit variable equal the float32 variable's to 16-bit precision. In bfloat16
    beta_2 = 0.999 rounds to 1: Keras' Adam arithmetic then left the variable where it was."""
    rng = np.random.default_rng(0)
    start, grads = rng.normal(size=(4, 3)), np.abs(rng.normal(size=(3, 4, 3))) + 0.5  # each step moves ~lr
    results = {}
    for variable_dtype in ("float32", dtype):
        variable = keras.Variable(start, dtype=variable_dtype, name="kernel")
        optimizer = create_optimizer(0.1, total_steps=10, warmup_steps=0)
        for grad in grads:
            optimizer.apply_gradients([(tf.constant(grad, variable_dtype), variable)])
        results[variable_dtype] = np.asarray(variable.numpy(), np.float32)
    moved = np.abs(results["float32"] - start)
    assert moved.min() > 0.2  # three steps of ~lr each
    np.testing.assert_allclose(results[dtype], results["float32"], rtol=0.02, atol=0.02)


class _OutputBias(keras.layers.Layer):
    """A bias named as keras-hub's MaskedLMHead names its own (`output_bias`)."""

    def build(self, shape):
        self.output_bias = self.add_weight(name="output_bias", shape=shape[-1:], initializer="ones")

    def call(self, x):
        return x + self.output_bias


def test_weight_decay_skips_bias_and_norms():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, bias_initializer="ones", name="dense")(inputs)
    x = keras.layers.LayerNormalization(
        gamma_initializer="ones", beta_initializer="ones", name="attention_layer_norm"
    )(x)
    x = _OutputBias(name="mlm_head")(x)
    x = RMSNorm(name="final_layer_norm")(x)
    model = keras.Model(inputs, x)
    lr, wd = 0.1, 0.5
    optimizer = create_optimizer(lr, total_steps=100, warmup_steps=0, weight_decay=wd)
    optimizer.build(model.trainable_variables)
    before = {v.path: np.array(v) for v in model.trainable_variables}
    optimizer.apply_gradients(
        [(tf.zeros(v.shape), v) for v in model.trainable_variables]
    )
    after = {v.path: np.array(v) for v in model.trainable_variables}
    kernel = "dense/kernel"
    np.testing.assert_allclose(after[kernel], before[kernel] * (1 - lr * wd), rtol=1e-6)
    for path in ["dense/bias", "attention_layer_norm/gamma", "attention_layer_norm/beta", "mlm_head/output_bias",
                 "final_layer_norm/scale"]:
        np.testing.assert_array_equal(after[path], before[path])


def test_a_model_saved_with_the_optimizer_loads_and_trains_on_identically(tmp_path):
    """`model.save` of a model compiled with tfllm's AdamW: it loads as the same class with its schedule, state and
    weight-decay exclusions (Keras does not save those), so one more step gives the same weights as the original's."""
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, name="dense", bias_initializer="ones")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=create_optimizer(0.1, total_steps=10, warmup_steps=2, weight_decay=0.5), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32"), np.zeros((4, 2), "float32")
    model.fit(x[0], y, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert int(loaded.optimizer.iterations) == 1
    for m in (model, loaded):
        m.fit(x[1], y, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a, b)
    bias = loaded.get_layer("dense").bias
    assert not loaded.optimizer._use_weight_decay(bias) and loaded.optimizer._use_weight_decay(
        loaded.get_layer("dense").kernel)


# ---- trainer.py ---------------------------------------------------------------


def test_resume_matches_uninterrupted_run(tmp_path, caplog):
    """10 steps straight == 5 steps, then a new Trainer continuing to 10 (<= 1e-6).

    On one device the tf.data iterator is restored from the checkpoint; the
    skip-the-consumed-batches path is tested under Mirrored (mirrored_check.py).
    """
    caplog.set_level(logging.INFO, logger="absl")
    data = tt.train_dataset_fn(BATCH)
    straight = make_trainer(tmp_path / "a", checkpoint_every=100)
    straight.train(data, max_steps=10)

    first = make_trainer(tmp_path / "b", checkpoint_every=100)
    first.train(data, max_steps=5)
    resumed = make_trainer(tmp_path / "b", checkpoint_every=100)
    resumed.train(data, max_steps=10)

    assert "Resumed from step 5" in caplog.text
    assert "restored the saved tf.data iterator" in caplog.text
    assert max_weight_diff(straight.model, resumed.model) <= 1e-6
    assert int(resumed.optimizer.iterations.numpy()) == 10

    # Re-running a finished run is a no-op.
    caplog.clear()
    again = make_trainer(tmp_path / "b", checkpoint_every=100)
    assert again.train(data, max_steps=10) == {"train": None, "eval": None, "steps": 10}
    assert "nothing to do" in caplog.text
    assert max_weight_diff(again.model, resumed.model) == 0.0

    # The checkpoint loads into a bare model, as a fine-tuning recipe would.
    bare = tt.build_model()
    tf.train.Checkpoint(model=bare).read(
        tf.train.latest_checkpoint(tmp_path / "b" / "checkpoints")
    ).expect_partial()
    assert max_weight_diff(bare, resumed.model) == 0.0


def test_time_budget_stops_at_the_next_boundary_and_finishes_like_the_last_step(tmp_path):
    """An exhausted budget ends the run after its first update: checkpoint, eval, steps=1, with the same
    weights as a run told to stop at 1 (the schedule still ends at 20)."""
    data, evaluation = tt.train_dataset_fn(BATCH), tt.eval_dataset_fn(BATCH, num_examples=16)
    budget = make_trainer(tmp_path / "budget", steps=20, time_budget_seconds=1e-9)
    results = budget.train(data, max_steps=20, eval_dataset_fn=evaluation)
    assert results["steps"] == 1 and results["eval"] is not None
    assert tf.train.latest_checkpoint(tmp_path / "budget" / "checkpoints").endswith("ckpt-1")
    reference = make_trainer(tmp_path / "one", steps=20)
    reference.train(data, max_steps=1)
    assert max_weight_diff(budget.model, reference.model) == 0.0


def test_evaluate_counts_every_example_once(tmp_path):
    trainer = make_trainer(tmp_path)
    results = trainer.evaluate(tt.eval_dataset_fn(BATCH, num_examples=13))
    reference = tt.numpy_eval(trainer.model, num_examples=13)
    assert results["loss"] == pytest.approx(reference["loss"], abs=1e-6)
    assert results["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-7)


def test_xla_compiled_steps_match_the_graph_loop(tmp_path):
    data = tt.train_dataset_fn(BATCH)
    graph = make_trainer(tmp_path / "graph")
    graph.train(data, max_steps=10)
    xla = make_trainer(tmp_path / "xla", jit_compile=True)
    xla.train(data, max_steps=10)
    assert max_weight_diff(graph.model, xla.model) <= 1e-5


def test_ema_weights_are_the_moving_average_of_the_iterates(tmp_path):
    """After training, the model holds avg_k = m * avg_(k-1) + (1 - m) * w_k (avg_1 = w_1) in numpy."""
    data, momentum, steps = tt.train_dataset_fn(BATCH), 0.8, 6
    plain = make_trainer(tmp_path / "plain", steps=steps, checkpoint_every=1)
    average = None
    for k in range(1, steps + 1):  # Each call resumes from the previous step's checkpoint.
        plain.train(data, max_steps=k)
        weights = [np.asarray(v) for v in plain.model.trainable_variables]
        average = weights if average is None else [momentum * a + (1 - momentum) * w
                                                   for a, w in zip(average, weights)]
    ema = make_trainer(tmp_path / "ema", steps=steps, ema_momentum=momentum)
    ema.train(data, max_steps=steps)
    for a, v in zip(average, ema.model.trainable_variables):
        np.testing.assert_allclose(np.asarray(v), a, atol=1e-6)
    assert max(float(np.max(np.abs(w - a))) for w, a in zip(weights, average)) > 1e-3  # not the last iterate
    # A finished run re-run from its checkpoint gets the same averaged weights.
    again = make_trainer(tmp_path / "ema", steps=steps, ema_momentum=momentum)
    again.train(data, max_steps=steps)
    assert max_weight_diff(again.model, ema.model) == 0.0
    # --ema_momentum=0 (how a command line overrides a flagfile's EMA) trains the plain iterates.
    off = make_trainer(tmp_path / "off", steps=steps, ema_momentum=0.0)
    off.train(data, max_steps=steps)
    assert max_weight_diff(off.model, plain.model) == 0.0


def test_grad_accumulation_matches_big_batch(tmp_path):
    """2 micro-batches of 4 == one batch of 8 over 3 updates (<= 1e-6)."""
    big = make_trainer(tmp_path / "big", global_batch_size=8)
    big.train(tt.train_dataset_fn(8), max_steps=3)
    accum = make_trainer(tmp_path / "accum", global_batch_size=4, grad_accum_steps=2)
    results = accum.train(tt.train_dataset_fn(4), max_steps=3)
    assert max_weight_diff(big.model, accum.model) <= 1e-6
    assert int(accum.optimizer.iterations.numpy()) == 3
    assert results["train"]["loss"] > 0


def test_nan_guard_names_step_and_keeps_good_checkpoint(tmp_path):
    """An inf loss at step 7 stops training; the latest checkpoint is step 5."""
    features, labels = tt.data()
    poison = np.ones(len(labels), "float32")

    def dataset_fn(context):
        # Unshuffled, so examples 48..55 form the 7th batch of 8.
        batch_poison = poison.copy()
        batch_poison[6 * BATCH] = np.inf
        ds = tf.data.Dataset.from_tensor_slices((features, (labels, batch_poison)))
        return ds.repeat().batch(BATCH, drop_remainder=True)

    def poisoned_loss(labels_and_poison, logits):
        labels, scale = labels_and_poison
        return tt.loss_fn(labels, logits) * scale

    trainer = make_trainer(tmp_path, loss_fn=poisoned_loss, checkpoint_every=5,
                           steps_per_execution=4)
    trainer.metric_fns = {}
    with pytest.raises(DivergedError, match=r"step 7\b.*ckpt-5"):
        trainer.train(dataset_fn, max_steps=10)
    latest = tf.train.latest_checkpoint(tmp_path / "checkpoints")
    assert latest.endswith("ckpt-5")
    for name, _ in tf.train.list_variables(latest):
        if name.startswith("model/"):
            assert np.all(np.isfinite(tf.train.load_variable(latest, name)))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_then_exits(tmp_path, signum):
    """SIGTERM (a preemption notice) or a first Ctrl-C mid-run: a checkpoint at the current step, then SystemExit
    with 128 + the signal's number; both handlers are put back."""
    base = tt.train_dataset_fn(BATCH)

    def send_signal():
        os.kill(os.getpid(), signum)
        return 0

    def with_signal(x, y):
        # Sent while the 3rd batch is produced (prefetch may run ahead).
        sent = tf.py_function(send_signal, [], tf.int32)
        with tf.control_dependencies([sent]):
            return tf.identity(x), tf.identity(y)

    def dataset_fn(context):
        ds = base(context)
        return ds.take(2).concatenate(ds.skip(2).take(1).map(with_signal)).concatenate(
            ds.skip(3))

    trainer = make_trainer(tmp_path, steps=50, checkpoint_every=100)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(SystemExit) as exit_info:
        trainer.train(dataset_fn, max_steps=50)
    assert exit_info.value.code == 128 + signum
    step = int(trainer.step.numpy())
    assert 0 < step < 50
    assert tf.train.latest_checkpoint(tmp_path / "checkpoints").endswith(f"ckpt-{step}")
    assert {s: signal.getsignal(s) for s in previous} == previous


def test_mirrored_two_cpus_in_subprocess():
    """Mirrored(2 logical CPUs) == one device; accumulation, resume (also from a
    one-device checkpoint) and fp16 too; the tagging loss over two replicas.

    fp16: an overflow on either replica skips the update on both (replica 1
    alone is the case Keras' LossScaleOptimizer misses on CPU, see
    loss_scaling.agree_on_overflow).
    """
    script = os.path.join(os.path.dirname(__file__), "scripts", "mirrored_check.py")
    out = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    diffs = json.loads(out.stdout.strip().splitlines()[-1])
    # Measured here: <= 6e-8 for loss and <= 3e-8 for weights; allow 1e-6.
    assert diffs["mirrored_vs_one_device_weights"] <= 1e-6
    assert diffs["mirrored_vs_one_device_loss"] <= 1e-6
    assert diffs["mirrored_accum_vs_one_device_big_batch_weights"] <= 1e-6
    assert diffs["mirrored_resume_vs_straight_weights"] <= 1e-6
    assert diffs["one_device_then_mirrored_vs_straight_weights"] <= 1e-6  # checkpoints are portable
    assert diffs["mirrored_eval_vs_numpy_loss"] <= 1e-6
    assert diffs["mirrored_eval_vs_numpy_accuracy"] <= 1e-7
    assert diffs["skip_log_seen"]
    assert diffs["masked_token_loss_vs_numpy_relative"] <= 1e-6  # tagging: the global mean over labelled tokens
    # fp16 per-replica batches of 4 round differently from one batch of 8 (measured 3e-5).
    assert diffs["mirrored_fp16_vs_one_device_fp16_weights"] <= 2e-4
    for replica in (0, 1):
        assert diffs[f"mirrored_fp16_overflow_on_replica_{replica}"] == {
            "skipped": 1, "loss_scale": 512.0, "weights_finite": True, "replicas_equal": True}
