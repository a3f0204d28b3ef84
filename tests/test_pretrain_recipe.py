"""BERT pretraining losses, and recipes/pretrain_bert.py -> recipes/classify.py --init_checkpoint end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.run_script import run_script
from tfllm.models import Bert
from tfllm.training import losses
from tfllm.training.init_checkpoint import restore_backbone

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "movie", "film", "plot", "acting", "was", "really", "quite", "a", "story",
         "good", "great", "fine", "bad", "awful", "dull", "king", "queen", "speak", "hear"]


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_pretraining_loss_and_metrics_match_numpy():
    rng = np.random.default_rng(0)
    mlm_logits = rng.normal(size=(3, 4, 7)).astype("float32")
    nsp_logits = rng.normal(size=(3, 2)).astype("float32")
    ids = rng.integers(0, 7, size=(3, 4))
    ids[0, 1] = mlm_logits[0, 1].argmax()  # one sure hit
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], "float32")
    nsp = np.array([0, 1, 1])
    labels = {"masked_lm_ids": tf.constant(ids), "masked_lm_weights": tf.constant(weights),
              "next_sentence_labels": tf.constant(nsp)}
    outputs = {"mlm_logits": tf.constant(mlm_logits), "nsp_logits": tf.constant(nsp_logits)}

    token_ce = -np.take_along_axis(log_softmax(mlm_logits), ids[..., None], -1)[..., 0]
    mlm = (token_ce * weights).sum() / weights.sum()  # BERT: mean over the batch's real predictions
    nsp_ce = -log_softmax(nsp_logits)[np.arange(3), nsp]
    per_example = losses.pretraining_loss(labels, outputs).numpy()
    assert per_example.shape == (3,)
    np.testing.assert_allclose(per_example.mean(), mlm + nsp_ce.mean(), rtol=1e-5)

    values, counts = losses.masked_lm_cross_entropy(labels, outputs)
    np.testing.assert_allclose(values.numpy().sum() / counts.numpy().sum(), mlm, rtol=1e-5)
    correct, counts = losses.masked_lm_accuracy(labels, outputs)
    hits = (mlm_logits.argmax(-1) == ids) * weights
    np.testing.assert_allclose(correct.numpy(), hits.sum(1))
    np.testing.assert_allclose(counts.numpy(), weights.sum(1))
    np.testing.assert_allclose(losses.next_sentence_accuracy(labels, outputs).numpy(),
                               nsp_logits.argmax(-1) == nsp)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Generated documents -> tools/create_pretraining_data.py -> 30 steps of bert_nano pretraining."""
    tmp = tmp_path_factory.mktemp("pretrain")
    rng = np.random.default_rng(0)
    with open(tmp / "corpus.txt", "w") as f:
        for _ in range(80):
            for _ in range(rng.integers(2, 7)):
                f.write(" ".join(rng.choice(WORDS, size=rng.integers(3, 10))) + " .\n")
            f.write("\n")
    (tmp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]) + "\n")
    tool = run_script("tools/create_pretraining_data.py", f"--input_file={tmp / 'corpus.txt'}",
               f"--vocab_file={tmp / 'vocab.txt'}", f"--output_file={tmp / 'data' / 'train'}", "--num_shards=2",
               "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=3", "--random_seed=1")
    model_dir = tmp / "model"
    run_script("recipes/pretrain_bert.py", f"--input_files={tmp / 'data' / 'train-*'}",
        f"--eval_input_files={tmp / 'data' / 'train-00000-of-00002'}", "--eval_steps=2",
        f"--vocab_file={tmp / 'vocab.txt'}", f"--model_dir={model_dir}", "--preset=bert_nano",
        "--max_steps=30", "--num_warmup_steps=3", "--batch_size=16", "--learning_rate=3e-3",
        "--log_every=10", "--save_every=10", "--strategy=cpu")
    return tmp, model_dir, tool


def test_pretraining_run_logs_metrics_and_saves(pretrained):
    tmp, model_dir, tool = pretrained
    assert "Summary: 80 documents" in tool.stdout and "instances" in tool.stdout
    results = json.loads((model_dir / "pretrain_results.json").read_text())
    for split in ("train", "eval"):
        assert set(results[split]) >= {"loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}
        assert np.isfinite(results[split]["loss"])
    assert results["train"]["mlm_loss"] < np.log(26)  # learned something beyond uniform over the vocabulary
    assert (model_dir / "vocab.txt").read_text() == (tmp / "vocab.txt").read_text()
    assert [p.name for p in sorted((model_dir / "checkpoints").glob("ckpt-*.index"))] == [
        "ckpt-10.index", "ckpt-20.index", "ckpt-30.index"]  # --save_every, the alias of --checkpoint_every


def test_classify_fine_tunes_from_the_pretrained_encoder(pretrained):
    """classify.py --init_checkpoint starts from the pretrained backbone (lr 0: the end equals the start)."""
    tmp, model_dir, _ = pretrained
    rng = np.random.default_rng(1)
    with open(tmp / "train.tsv", "w") as f:
        f.write("label\tsentence\n")
        for _ in range(64):
            f.write(f"{rng.integers(2)}\t{' '.join(rng.choice(WORDS, size=6))}\n")
    proc = run_script("recipes/classify.py", f"--train_file={tmp / 'train.tsv'}",
               f"--model_dir={tmp / 'classify'}", f"--vocab_file={model_dir / 'vocab.txt'}",
               f"--init_checkpoint={model_dir}", "--preset=bert_nano", "--learning_rate=0", "--epochs=1",
               "--batch_size=32", "--max_seq_length=16", "--strategy=cpu")
    # The pretraining --model_dir is a model folder (config.json + final weights): its encoder, vocabulary
    # and casing are used.
    assert f"Vocabulary, casing and model size from {model_dir}" in proc.stderr

    def backbone_from(path):
        backbone = Bert.from_preset("bert_nano", vocabulary_size=26, max_sequence_length=512)
        restore_backbone(backbone, str(path))
        return backbone

    pretrained_weights = backbone_from(model_dir).get_weights()
    fine_tuned_weights = backbone_from(tmp / "classify").get_weights()
    fresh_weights = Bert.from_preset("bert_nano", vocabulary_size=26, max_sequence_length=512).get_weights()
    assert len(pretrained_weights) == len(fine_tuned_weights) > 10
    for pretrained_w, fine_tuned_w in zip(pretrained_weights, fine_tuned_weights):
        np.testing.assert_array_equal(pretrained_w, fine_tuned_w)
    assert any(not np.allclose(a, b) for a, b in zip(pretrained_weights, fresh_weights))
