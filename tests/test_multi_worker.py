"""MultiWorkerMirroredStrategy for real: worker processes on localhost; data sharding.

Each worker is a subprocess with its own TF_CONFIG (worker 0 is the chief).
The recipe test runs recipes/classify.py on the toy task of
test_classify_recipe.py: 20-25 s on an idle 2-core machine, ~50 s on a busy
one (every process imports TensorFlow and traces its steps; the chief
exports). The fault tests run the tiny model of tests/scripts/multi_worker_tiny.py.
"""

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.fresh_process import serve_in_fresh_process
from tests.test_classify_recipe import write_toy_tsv
from tfllm.data import classification_dataset
from tfllm.data import read_labeled_text
from tfllm.data.language_modeling import lm_dataset
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import losses

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
import tiny_training as tt

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "scripts" / "multi_worker_tiny.py"


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_cluster(commands, log_prefix, envs=None):
    """One worker process per command; worker i logs to `<log_prefix><i>.log`."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(commands))]}
    workers = []
    for index, command in enumerate(commands):
        env = dict(os.environ, **(envs[index] if envs else {}), TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        with open(f"{log_prefix}{index}.log", "w") as log:
            workers.append(subprocess.Popen([sys.executable, *map(str, command)], env=env,
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return workers


def wait_codes(workers, timeout):
    """Exit codes; kills whatever still runs after `timeout` (then the wait raises)."""
    try:
        return [w.wait(timeout=timeout) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(str(Path(model_dir) / "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


# ---- recipes/classify.py on two workers ---------------------------------------

STEPS = 8  # 256 examples / global batch 32, one epoch


def test_two_workers_train_checkpoint_once_and_export(tmp_path):
    """Both exit 0; one global model; only the chief writes checkpoints and the export.

    Each worker tokenizes and trains on its half of the data; the progress
    lines (global loss and accuracy, all-reduced) agree; the chief's
    checkpoint and SavedModel load, and the distributed eval equals an
    in-process eval of the restored model over every dev example once.
    """
    write_toy_tsv(tmp_path / "train.tsv", 256, seed=0)
    write_toy_tsv(tmp_path / "dev.tsv", 64, seed=1)
    command = [
        ROOT / "recipes" / "classify.py",
        f"--train_file={tmp_path / 'train.tsv'}", f"--eval_file={tmp_path / 'dev.tsv'}",
        f"--model_dir={tmp_path / 'model'}", f"--export_dir={tmp_path / 'export'}",
        "--model_name=toy", "--preset=bert_nano", "--vocab_size=120", "--max_seq_length=16",
        "--batch_size=32", "--learning_rate=3e-3", "--epochs=1", "--dropout=0.0",
        "--strategy=multi_worker", "--log_every=4", "--checkpoint_every=4",
    ]
    # Each worker gets its own temp dir, to see that it leaves no checkpoint behind.
    envs = [{"TMPDIR": str(tmp_path / f"tmp{i}")} for i in range(2)]
    for env in envs:
        os.mkdir(env["TMPDIR"])
    codes = wait_codes(start_cluster([command] * 2, tmp_path / "worker", envs), timeout=240)
    chief_log, worker_log = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for code, log in zip(codes, [chief_log, worker_log]):
        assert code == 0, log[-4000:]

    for index, log in enumerate([chief_log, worker_log]):
        assert "Strategy CollectiveAllReduceStrategy with 2 replica(s)" in log
        assert f"train.tsv (shard {index} of 2): 0 of 128 texts" in log
        assert "dev.tsv: 0 of 64 texts" in log  # every worker predicts all of dev (its metrics need each row)
    last_progress = [re.findall(rf"step {STEPS}/{STEPS}  (loss \S+  accuracy \S+)", log)
                     for log in (chief_log, worker_log)]
    assert last_progress[0] and last_progress[0] == last_progress[1]  # global, all-reduced
    assert "Saved checkpoint" in chief_log and "Saved checkpoint" not in worker_log
    assert "exported:" in chief_log and "exported:" not in worker_log
    # Nothing left by the workers' temporary checkpoints, nothing of theirs in model_dir. (Autograph writes
    # its generated modules to TMPDIR and deletes them at exit; Python's bytecode cache of them may stay.)
    for index in range(2):
        assert [p.name for p in (tmp_path / f"tmp{index}").iterdir() if p.name != "__pycache__"] == []
    checkpoints = tmp_path / "model" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index",
        "ckpt-8.data-00000-of-00001", "ckpt-8.index"]

    # The chief's checkpoint restores into a Keras model; the export serves
    # raw strings in a process without tfllm and gives the same probabilities.

    pre = BertPreprocessor(str(tmp_path / "model" / "vocab.txt"), sequence_length=16)
    model = BertClassifier(Bert.from_preset("bert_nano", vocabulary_size=pre.tokenizer.vocabulary_size(),
                                            max_sequence_length=512, dropout=0.0), 2, dropout=0.0)
    tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(checkpoints)).assert_existing_objects_matched()
    texts, labels = read_labeled_text(tmp_path / "dev.tsv")
    logits = model(pre(tf.constant(texts)))
    served = serve_in_fresh_process(tmp_path / "export" / "toy" / "1", {"text": texts[:4]})
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(logits[:4]).numpy(), atol=1e-5)

    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert results["step"] == STEPS
    expected_loss = float(np.mean(losses.classification_loss(labels, logits)))
    expected_accuracy = float(np.mean(losses.classification_accuracy(labels, logits)))
    assert results["loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert results["accuracy"] == pytest.approx(expected_accuracy, abs=1e-7)


# ---- Faults, on the tiny model -------------------------------------------------


def test_killed_worker_stops_the_other_and_rerun_resumes(tmp_path):
    """kill -9 worker 1 after the step-10 checkpoint: the chief fails fast (no hang).

    Re-running both workers resumes from the chief's latest checkpoint and
    finishes all 60 steps (the multi-worker answer to preemption).
    """
    model_dir = tmp_path / "model"
    workers = start_cluster([[TINY, model_dir, 60, 0.05]] * 2, tmp_path / "first")
    deadline = time.time() + 120
    while latest_step(model_dir) < 10 and workers[0].poll() is None and time.time() < deadline:
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    chief_code = wait_codes(workers[:1], timeout=60)[0]
    assert workers[1].wait(timeout=10) == -signal.SIGKILL
    chief_log = (tmp_path / "first0.log").read_text()
    assert chief_code != 0 and "UnavailableError" in chief_log, chief_log[-3000:]
    assert time.time() - killed_at < 60
    resume_step = latest_step(model_dir)
    assert 10 <= resume_step < 60

    codes = wait_codes(start_cluster([[TINY, model_dir, 60]] * 2, tmp_path / "rerun"), timeout=180)
    for index, code in enumerate(codes):
        log = (tmp_path / f"rerun{index}.log").read_text()
        assert code == 0, log[-3000:]
        assert f"Resumed from step {resume_step} " in log and "step 60/60" in log
    assert latest_step(model_dir) == 60


def test_workers_that_restored_different_steps_fail_fast(tmp_path):
    """Per-worker model_dirs (no shared storage) after a restart: both stop with a clear error.

    Worker 0 finds a step-2 checkpoint, worker 1 none; left alone they would
    run different numbers of collective steps and hang at the end.
    """


    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tt.build_model()
        optimizer = create_optimizer(1e-2, total_steps=4, warmup_steps=1)
    Trainer(model, optimizer, tt.loss_fn, 8, str(tmp_path / "dir0"), strategy).train(
        tt.train_dataset_fn(8), max_steps=2)

    workers = start_cluster([[TINY, tmp_path / "dir0"], [TINY, tmp_path / "dir1"]], tmp_path / "worker")
    for index, code in enumerate(wait_codes(workers, timeout=120)):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert code != 0 and "Workers resumed from different steps [0, 2]" in log, log[-3000:]


# ---- Sharding: each worker's input pipeline sees a disjoint part of every epoch.


def two_pipelines():
    return [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                       num_replicas_in_sync=2) for i in range(2)]


def test_classification_training_data_is_split_between_workers():
    """One epoch per worker = its half of the examples; the halves are disjoint and cover all.

    All texts have 4 words, so length bucketing cannot reorder across epochs.
    """

    words = [f"w{i}" for i in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    texts = [" ".join(t) for t in itertools.islice(itertools.product(words, repeat=4), 0, 2000, 10)]
    assert len(set(texts)) == len(texts) == 200
    labels = np.arange(200) % 2
    pre = BertPreprocessor(vocab, sequence_length=8)
    seen = []
    for context in two_pipelines():
        per_replica = context.get_per_replica_batch_size(20)
        ds = classification_dataset(texts, labels, pre, per_replica, training=True, seed=0,
                                    input_context=context)
        epoch = list(itertools.islice(ds.as_numpy_iterator(), 100 // per_replica))
        rows = [tuple(row) for x, _ in epoch for row in x["token_ids"]]
        assert len(rows) == len(set(rows)) == 100  # no example twice in an epoch
        seen.append(set(rows))
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 200


def test_language_model_blocks_are_split_between_workers():
    """In one pass the workers get disjoint blocks, cut at the same random offset."""

    stream = np.arange(1001)  # token = position
    block = 10
    per_worker = 49  # a pass has 99 or 100 blocks, depending on its offset
    starts = []
    for context in two_pipelines():
        ds = lm_dataset(stream, block, batch_size=1, training=True, seed=0, input_context=context)
        first = list(itertools.islice(ds.as_numpy_iterator(), per_worker))
        starts.append({int(x["token_ids"][0, 0]) for x, _ in first})
        assert len(starts[-1]) == per_worker  # no block twice in a pass
    assert not starts[0] & starts[1]
    assert len({s % block for s in starts[0] | starts[1]}) == 1
