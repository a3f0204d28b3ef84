"""Preemption without warning: SIGKILL mid-run, re-run the same command, get the same model.

SIGTERM (a polite preemption notice) is tested in test_training.py; here the
process gets no chance to save. Runs tests/scripts/preemptible_training.py:
one CPU device, dropout 0.3, a checkpoint every 10 of 60 steps.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tests.run_script import ROOT
from tests.run_script import run_script

SCRIPT = "tests/scripts/preemptible_training.py"
STEPS, EVERY, KILL_AT = 60, 10, 20
FLAGS = [f"--max_steps={STEPS}", f"--checkpoint_every={EVERY}"]


def command(model_dir):
    return [sys.executable, SCRIPT, str(model_dir), *FLAGS]


def start(model_dir, log, *extra):
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        return subprocess.Popen([*command(model_dir), *extra], stdout=out, stderr=err, cwd=ROOT)


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def saved_variables(model_dir):
    """Weights, optimizer slots, step and RNG state of the latest checkpoint, by name."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "data_iterator/", "save_counter/")
    return {name: tf.train.load_variable(path, name)
            for name, _ in tf.train.list_variables(path) if not name.startswith(skip)}


def test_sigkill_then_rerun_resumes_and_matches_uninterrupted_run(tmp_path):
    """kill -9 after the step-20 checkpoint; the re-run resumes there, not at 0.

    It ends at step 60 with the same weights, optimizer state and last-window
    loss as a run never interrupted, within 1e-6 (in practice identical): on
    one device the checkpoint holds the tf.data iterator (shuffle state
    included) and the dropout seed states, so the resumed run sees the same
    batches and the same dropout masks.
    """
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    # The uninterrupted run: a new process too (in the tests' script process, after other jobs, it ended 0.13
    # away in loss: state those jobs left), alongside, without the host sleep that only the killed run needs.
    straight = start(straight_dir, tmp_path / "straight", "--step_seconds=0")
    victim = start(killed_dir, tmp_path / "victim")
    deadline = time.time() + 120
    while latest_step(killed_dir) < KILL_AT and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL, "finished before it could be killed"
    resume_step = latest_step(killed_dir)
    assert KILL_AT <= resume_step < STEPS

    # The re-run: a new process as the killed one was (the tests' script process runs tf.data without
    # autotuning, an iterator that could not restore this one's state). No host sleep: nobody kills it.
    rerun = run_script(SCRIPT, killed_dir, *FLAGS, "--step_seconds=0", fresh=True)
    assert f"Resumed from step {resume_step} " in rerun.stderr
    assert "restored the saved tf.data iterator" in rerun.stderr
    assert f"step {STEPS}/{STEPS}" in rerun.stderr
    assert straight.wait(timeout=300) == 0, (tmp_path / "straight.err").read_text()[-3000:]

    resumed_result = json.loads(rerun.stdout.strip().splitlines()[-1])
    straight_result = json.loads((tmp_path / "straight.out").read_text().strip().splitlines()[-1])
    assert resumed_result["step"] == straight_result["step"] == STEPS
    assert latest_step(killed_dir) == latest_step(straight_dir) == STEPS
    assert abs(resumed_result["train"]["loss"] - straight_result["train"]["loss"]) <= 1e-6

    straight_vars, resumed_vars = saved_variables(straight_dir), saved_variables(killed_dir)
    assert straight_vars.keys() == resumed_vars.keys()
    assert any(name.startswith("rng/") for name in straight_vars)  # dropout seed state
    assert len(straight_vars) > 20  # 7 weights, 14 Adam slots, iterations, step, rng
    for name, value in straight_vars.items():
        np.testing.assert_allclose(resumed_vars[name], value, atol=1e-6, rtol=0, err_msg=name)
