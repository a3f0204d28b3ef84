"""Mixed precision in the Trainer: bf16 and fp16 track fp32; fp16 loss scaling skips overflows.

All on the tiny model of tests/scripts/tiny_training.py, one CPU device.
Multi-replica fp16 (one replica overflowing) is in scripts/mirrored_check.py.
"""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.training import AdamW
from tfllm.training import Trainer
from tfllm.training import create_optimizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
import tiny_training as tt

BATCH = 8


class RecordingTrainer(Trainer):
    """Keeps every logged window's results (log_every=1: one per step)."""

    def _log_train(self, *args):
        results = super()._log_train(*args)
        self.history.append(results)
        return results


@pytest.fixture(autouse=True)
def restore_float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def make_trainer(model_dir, policy="float32", initial_scale=None, steps=30, warmup_steps=2,
                 clipnorm=1.0, loss_fn=tt.loss_fn, **kwargs):
    """A Trainer under `policy`; with `initial_scale`, our own LossScaleOptimizer."""
    keras.mixed_precision.set_global_policy(policy)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=steps, warmup_steps=warmup_steps,
                                     clipnorm=clipnorm)
        if initial_scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale)
    kwargs.setdefault("global_batch_size", BATCH)
    trainer = RecordingTrainer(model, optimizer, loss_fn, model_dir=str(model_dir),
                               strategy=strategy, log_every=1, **kwargs)
    trainer.history = []
    keras.mixed_precision.set_global_policy("float32")  # the model keeps its policy
    return trainer


def train(model_dir, steps=30, batch=BATCH, dataset_fn=None, **kwargs):
    trainer = make_trainer(model_dir, steps=steps, global_batch_size=batch, **kwargs)
    trainer.train(dataset_fn or tt.train_dataset_fn(batch), max_steps=steps)
    return trainer


def losses(trainer):
    return np.array([r["loss"] for r in trainer.history])


def max_weight_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.fixture(scope="module")
def fp32_run(tmp_path_factory):
    trainer = train(tmp_path_factory.mktemp("fp32"))
    loss = losses(trainer)
    assert loss[-10:].mean() < loss[:10].mean() - 0.1  # it learns, so tracking it means something
    return trainer


def test_bf16_loss_tracks_fp32(tmp_path, fp32_run):
    """30 steps: every step's loss within 0.05 of fp32 (measured 0.016; bf16 keeps 8 mantissa bits)."""
    bf16 = train(tmp_path, policy="mixed_bfloat16")
    assert bf16.model.layers[-1].compute_dtype == "bfloat16"
    assert not bf16.loss_scaling  # bf16 has float32's range
    assert np.max(np.abs(losses(bf16) - losses(fp32_run))) <= 0.05


def test_fp16_wraps_in_loss_scale_optimizer_and_tracks_fp32(tmp_path, fp32_run):
    """30 steps: every step's loss within 5e-3 of fp32 (measured 8e-4), no update skipped.

    The scale starts at 2**10: at Keras' default 2**15 this tiny model's
    first two updates overflow and are (rightly) skipped, which would shift it.
    """
    default = make_trainer(tmp_path / "default", policy="mixed_float16")
    assert isinstance(default.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(default.optimizer.inner_optimizer, AdamW)  # clips after the all-reduce

    fp16 = train(tmp_path / "run", policy="mixed_float16", initial_scale=2**10)
    assert fp16.model.layers[-1].compute_dtype == "float16"
    assert np.max(np.abs(losses(fp16) - losses(fp32_run))) <= 5e-3
    assert fp16.history[-1]["skipped_updates"] == 0
    assert fp16.history[-1]["loss_scale"] == 2**10
    assert max_weight_diff(fp16.model, fp32_run.model) <= 2e-3


def poisoned_data(poison_step, factor):
    """Unshuffled batches; examples of batch `poison_step` (1-based) have their loss x `factor`."""
    features, labels = tt.data()
    scale = np.ones(len(labels), "float32")
    scale[(poison_step - 1) * BATCH:poison_step * BATCH] = factor

    def dataset_fn(context):
        ds = tf.data.Dataset.from_tensor_slices((features, (labels, scale)))
        return ds.repeat().batch(BATCH, drop_remainder=True)

    def loss_fn(labels_and_scale, logits):
        labels, scale = labels_and_scale
        return tf.cast(tt.loss_fn(labels, logits), tf.float32) * scale

    return dataset_fn, loss_fn


def weights_at(model_dir, step):
    model = tt.build_model()
    tf.train.Checkpoint(model=model).read(str(model_dir / "checkpoints" / f"ckpt-{step}")).expect_partial()
    return model


def saved(model_dir, step, name):
    return tf.train.load_variable(str(model_dir / "checkpoints" / f"ckpt-{step}"), name)


def test_fp16_overflow_skips_the_update_and_halves_the_scale(tmp_path):
    """Step 4's loss x 1e4 overflows the float16 backward pass (the loss stays finite).

    That update is skipped (weights and iterations unchanged), the scale
    halves, the NaN guard does not fire, training goes on; the scale is in
    the checkpoint, so a resumed run continues with the lowered one.
    """
    dataset_fn, loss_fn = poisoned_data(poison_step=4, factor=1e4)
    trainer = train(tmp_path, steps=8, policy="mixed_float16", initial_scale=2**10,
                    dataset_fn=dataset_fn, loss_fn=loss_fn, checkpoint_every=1, max_checkpoints=10)
    assert np.isfinite(losses(trainer)).all() and losses(trainer)[3] > 1000
    assert max_weight_diff(weights_at(tmp_path, 3), weights_at(tmp_path, 4)) == 0.0
    assert max_weight_diff(weights_at(tmp_path, 4), weights_at(tmp_path, 5)) > 0.0
    scales = [float(saved(tmp_path, s, "loss_scale/0/.ATTRIBUTES/VARIABLE_VALUE")) for s in (3, 4, 5)]
    assert scales == [2**10, 2**9, 2**9]
    iterations = [int(saved(tmp_path, s, "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
                  for s in (3, 4, 5)]
    assert iterations == [3, 3, 4]
    assert trainer.history[-1]["skipped_updates"] == 1

    resumed = make_trainer(tmp_path, policy="mixed_float16", initial_scale=2**10, steps=8)
    assert resumed.restore() == 8
    assert float(resumed.optimizer.dynamic_scale.numpy()) == 2**9


def test_fp16_gradients_nan_at_any_scale_stop_training(tmp_path):
    """NaN gradients from a finite loss: halving 16 -> 0.5 over 5 skipped updates, then stop."""

    @tf.custom_gradient
    def nan_gradient(x):
        return tf.identity(x), lambda dy: dy * float("nan")

    def loss_fn(labels, logits):
        return tt.loss_fn(labels, nan_gradient(tf.cast(logits, tf.float32)))

    trainer = make_trainer(tmp_path, policy="mixed_float16", initial_scale=16, loss_fn=loss_fn)
    before = [w.copy() for w in trainer.model.get_weights()]
    with pytest.raises(FloatingPointError, match=r"step 5 .*lowered to 0.5 \(5 updates skipped\)"):
        trainer.train(tt.train_dataset_fn(BATCH), max_steps=30)
    for w, b in zip(trainer.model.get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_fp16_with_gradient_accumulation_matches_big_batch(tmp_path, fp32_run):
    """2 micro-batches of 4 under fp16 == fp32 batch 8 over 5 updates (weights <= 5e-4; measured 5e-5)."""
    fp32 = train(tmp_path / "fp32", steps=5)
    accum = train(tmp_path / "accum", steps=5, batch=4, grad_accum_steps=2,
                  policy="mixed_float16", initial_scale=2**10)
    assert accum.history[-1]["skipped_updates"] == 0
    assert int(accum.optimizer.iterations.numpy()) == 5
    assert max_weight_diff(accum.model, fp32.model) <= 5e-4


@pytest.mark.parametrize("clipnorm", [None, 0.01])
def test_fp16_unscales_before_adamw_clips(tmp_path, clipnorm):
    """Adam's first moment after one update is 0.1 x the (clipped) gradient: fp16 == fp32.

    Without clipping this shows the loss scale (1024) is divided out; with
    clipnorm 0.01 the moment's norm is 1e-3 under both, so AdamW clips (after
    its all-reduce) the unscaled gradient, not the scaled one (1e-3 / 1024).
    """
    moments = {}
    for policy, scale in [("float32", None), ("mixed_float16", 2**10)]:
        trainer = train(tmp_path / policy, steps=1, warmup_steps=0, clipnorm=clipnorm,
                        policy=policy, initial_scale=scale)
        inner = getattr(trainer.optimizer, "inner_optimizer", trainer.optimizer)
        moments[policy] = [m.numpy() for m in inner._momentums]
    fp32, fp16 = moments["float32"], moments["mixed_float16"]
    difference = tf.linalg.global_norm([a - b for a, b in zip(fp32, fp16)])
    assert float(difference) <= 1e-2 * float(tf.linalg.global_norm(fp32))
    if clipnorm:
        for m in (fp32, fp16):
            assert float(tf.linalg.global_norm(m)) == pytest.approx(0.1 * clipnorm, rel=1e-4)


def test_resume_under_another_precision_keeps_the_optimizer_state(tmp_path):
    """fp32 for 3 steps, then fp16 to 5: Adam's slots and iteration count carry over.

    Checkpoints save the inner optimizer as `optimizer` (the loss scale apart),
    so wrapping it in a LossScaleOptimizer does not change the layout.
    """
    first = make_trainer(tmp_path, steps=5)
    first.train(tt.train_dataset_fn(BATCH), max_steps=3)
    moments = [m.numpy() for m in first.optimizer._momentums]

    resumed = make_trainer(tmp_path, policy="mixed_float16", initial_scale=2**10, steps=5)
    assert resumed.restore() == 3
    assert int(resumed.optimizer.iterations.numpy()) == 3
    for m, saved in zip(resumed.optimizer.inner_optimizer._momentums, moments):
        np.testing.assert_array_equal(m.numpy(), saved)
    resumed.train(tt.train_dataset_fn(BATCH), max_steps=5)
    assert int(resumed.optimizer.iterations.numpy()) == 5


# The classify recipe under --mixed_precision=fp16 runs in tests/test_classify_recipe.py (resuming a float32 run).
