"""Resuming when checkpoints are damaged: tfllm.training.Trainer.restore.

The newest checkpoint loses its files, is truncated or corrupted; each
resume must fall back to the newest intact one and still end with the
weights of an uninterrupted run, keep the intact older checkpoints, and
never silently start again from step 0.
"""

import logging
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfllm.errors import CheckpointError
from tfllm.training import Trainer
from tfllm.training import create_optimizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
import tiny_training as tt

BATCH = 8
TOTAL_STEPS = 14  # The learning-rate schedule of every run here.


def make_trainer(model_dir, **kwargs):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=TOTAL_STEPS, warmup_steps=2)
    return Trainer(model, optimizer, tt.loss_fn, BATCH, str(model_dir), strategy,
                   log_every=100, checkpoint_every=2, max_checkpoints=3, **kwargs)


def train(model_dir, max_steps, **kwargs):
    trainer = make_trainer(model_dir, **kwargs)
    trainer.train(tt.train_dataset_fn(BATCH), max_steps=max_steps)
    return trainer


def max_weight_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a.get_weights(), b.get_weights()))


def saved_steps(model_dir):
    names = os.listdir(os.path.join(model_dir, "checkpoints"))
    return sorted(int(m.group(1)) for m in map(re.compile(r"ckpt-(\d+)\.index$").match, names) if m)


def data_file(model_dir, step):
    return os.path.join(model_dir, "checkpoints", f"ckpt-{step}.data-00000-of-00001")


def damage(model_dir, step, how):
    """Breaks checkpoint `step` the way a full disk, a kill or bad storage would."""
    path = data_file(model_dir, step)
    data = open(path, "rb").read()
    if how == "delete data":
        os.remove(path)
    elif how == "truncate":
        open(path, "wb").write(data[: len(data) // 2])
    elif how == "corrupt":  # Same length, 64 bytes flipped in the middle: only checksums can tell.
        middle = len(data) // 2
        flipped = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        open(path, "wb").write(data[:middle] + flipped + data[middle + 64:])
    elif how == "lose all files":  # The state file still lists it.
        for name in os.listdir(os.path.dirname(path)):
            if name.startswith(f"ckpt-{step}."):
                os.remove(os.path.join(os.path.dirname(path), name))
    else:
        raise ValueError(how)


def test_each_broken_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    """Break the newest checkpoint four ways in turn; each resume starts from the one before,
    and the last run ends with the weights of 14 uninterrupted steps."""
    caplog.set_level(logging.INFO, logger="absl")
    straight = train(tmp_path / "straight", TOTAL_STEPS)
    run = str(tmp_path / "run")
    train(run, 6)
    assert saved_steps(run) == [2, 4, 6]
    for newest, how in [(6, "corrupt"), (8, "truncate"), (10, "delete data"), (12, "lose all files")]:
        damage(run, newest, how)
        caplog.clear()
        resumed = train(run, newest + 2)
        broken = os.path.join(run, "checkpoints", f"ckpt-{newest}")
        assert f"Checkpoint {broken} is unreadable" in caplog.text, how
        assert f"Resumed from step {newest - 2} " in caplog.text, how
        # The intact older ones survived the rotation; the broken one was saved again.
        assert saved_steps(run) == [newest - 2, newest, newest + 2], how
        assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith(f"ckpt-{newest + 2}")
    assert int(resumed.optimizer.iterations.numpy()) == TOTAL_STEPS
    assert max_weight_diff(straight.model, resumed.model) <= 1e-6
    # The broken files were kept aside, not deleted (ckpt-12 had none left).
    unreadable = sorted(os.listdir(os.path.join(run, "checkpoints", "unreadable")))
    assert unreadable == ["ckpt-10.index", "ckpt-6.data-00000-of-00001", "ckpt-6.index",
                          "ckpt-8.data-00000-of-00001", "ckpt-8.index"]


def test_lost_state_file_resumes_from_the_newest_checkpoint_on_disk(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    straight = train(tmp_path / "straight", 8)
    run = str(tmp_path / "run")
    train(run, 6)
    os.remove(os.path.join(run, "checkpoints", "checkpoint"))
    resumed = train(run, 8)
    assert "Resumed from step 6 " in caplog.text
    assert saved_steps(run) == [4, 6, 8]
    assert max_weight_diff(straight.model, resumed.model) <= 1e-6


def test_leftover_temp_folder_of_a_killed_save_is_removed(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    run = str(tmp_path / "run")
    train(run, 4)
    # What a save killed midway leaves: its shard, never merged into ckpt-6.
    temp = os.path.join(run, "checkpoints", "ckpt-6_temp")
    os.makedirs(temp)
    with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
        f.write(b"\0" * 100)
    resumed = make_trainer(run)
    assert resumed.restore() == 4
    assert not os.path.exists(temp)
    assert f"Deleting {temp}" in caplog.text


def test_no_intact_checkpoint_raises_naming_the_folder_and_restart_starts_over(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    run = str(tmp_path / "run")
    train(run, 4)
    damage(run, 4, "truncate")
    damage(run, 2, "corrupt")
    before = sorted(os.listdir(os.path.join(run, "checkpoints")))
    checkpoints = os.path.join(run, "checkpoints")
    with pytest.raises(CheckpointError, match=re.escape(checkpoints)) as error:
        train(run, 6)
    assert "\n" not in str(error.value)
    assert "ckpt-4: Read less bytes than requested" in str(error.value)
    assert "; ckpt-2: " in str(error.value)  # Which tensor the flipped bytes hit decides the reason.
    assert sorted(os.listdir(checkpoints)) == before  # Nothing moved, nothing deleted.

    # restart=True: the old files go aside and training starts from step 0.
    fresh = train(tmp_path / "fresh", 4)
    restarted = train(run, 4, restart=True)
    assert "Resumed from" not in caplog.text
    assert max_weight_diff(fresh.model, restarted.model) == 0.0
    assert saved_steps(run) == [2, 4]
    aside = [name for name in os.listdir(checkpoints) if name.startswith("before-restart-")]
    assert len(aside) == 1
    assert sorted(os.listdir(os.path.join(checkpoints, aside[0]))) == [
        name for name in before if name != "unreadable"]


def test_restart_ignores_intact_checkpoints_too(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    fresh = train(tmp_path / "fresh", 2)
    run = str(tmp_path / "run")
    train(run, 4)
    restarted = make_trainer(run, restart=True)
    assert restarted.restore() == 0
    assert "Restarting from step 0" in caplog.text
    restarted.train(tt.train_dataset_fn(BATCH), max_steps=2)  # Restarts once only: no second move.
    assert max_weight_diff(fresh.model, restarted.model) == 0.0
    assert saved_steps(run) == [2]
