"""recipes/classify.py end to end on generated data: learns, resumes, exports, serves without tfllm."""

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models.bert.bert_preprocessor import BertPreprocessor

ROOT = Path(__file__).resolve().parents[1]
POSITIVE = ["good", "great", "fine", "superb", "lovely", "brilliant"]
NEGATIVE = ["bad", "awful", "dull", "poor", "boring", "terrible"]
FILLER = ["the", "movie", "film", "plot", "acting", "was", "really", "quite", "a", "story"]


def write_toy_tsv(path, n, seed):
    """Sentiment decided by one polar word among filler words: learnable by a tiny model."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("label\tsentence\n")
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(FILLER, size=int(rng.integers(3, 9))))
            words.insert(int(rng.integers(len(words) + 1)), rng.choice(POSITIVE if label else NEGATIVE))
            f.write(f"{label}\t{' '.join(words)}\n")


def run_recipe(tmp_path, *extra, check=True):
    return run_script(
        "recipes/classify.py", f"--train_file={tmp_path / 'train.tsv'}", f"--eval_file={tmp_path / 'dev.tsv'}",
        f"--model_dir={tmp_path / 'model'}", f"--export_dir={tmp_path / 'export'}",
        "--model_name=toy", "--preset=bert_nano", "--vocab_size=120", "--max_seq_length=16",
        "--batch_size=32", "--learning_rate=3e-3", "--epochs=6", "--dropout=0.0",
        "--label_names=negative,positive", "--strategy=cpu", "--log_every=20", "--checkpoint_every=20",
        *extra, check=check,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("classify")
    write_toy_tsv(tmp_path / "train.tsv", 640, seed=0)
    write_toy_tsv(tmp_path / "dev.tsv", 200, seed=1)
    proc = run_recipe(tmp_path)
    return tmp_path, proc


def test_recipe_learns_the_toy_task(trained):
    tmp_path, proc = trained
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert results["examples"] == 200
    assert results["accuracy"] >= 0.95, results
    assert "eval: accuracy" in proc.stdout
    assert "step 120/120" in proc.stderr  # progress lines, 640/32*6 = 120 steps
    assert list((tmp_path / "model" / "train").glob("events.out.tfevents*"))  # TensorBoard
    assert "serving precision: float32 (float32 weights and compute)\n" in proc.stderr
    logged = {value.tag: (event.step, float(tf.make_ndarray(value.tensor)))
              for path in (tmp_path / "model" / "eval").glob("events.out.tfevents*")
              for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value}
    assert logged == {k: (120, pytest.approx(results[k])) for k in ("accuracy", "f1", "matthews_correlation", "loss")}


def test_rerun_resumes_instead_of_restarting(trained, tmp_path):
    shutil.copytree(trained[0], tmp_path, dirs_exist_ok=True)  # leave the shared run as it is
    again = run_recipe(tmp_path, "--export_dir=")
    assert "Resumed from step 120" in again.stderr
    assert "nothing to do" in again.stderr
    # Resumed under --mixed_precision=fp16 (the optimizer state carries over): loss-scaled steps, and an export
    # that serves probabilities. The export is tools/export.py's (export_folder): it computes in what
    # --serving_precision asks, whatever the run trained in.
    longer = run_recipe(tmp_path, "--epochs=7", "--mixed_precision=fp16", "--log_every=10", "--serving_precision=bf16")
    assert "Resumed from step 120" in longer.stderr and "step 140/140" in longer.stderr
    assert "loss scale 32768 (0 skipped)" in longer.stderr, longer.stderr[-3000:]
    assert "serving precision: bfloat16 (bfloat16 weights and matmuls; LayerNorm, softmax and outputs in float32; " \
           "trained under the mixed_float16 policy)" in longer.stderr, longer.stderr[-3000:]
    reader = tf.train.load_checkpoint(str(tmp_path / "export" / "toy" / "1" / "variables" / "variables"))
    assert {dtype for name, dtype in reader.get_variable_to_dtype_map().items() if "kernel" in name} == {tf.bfloat16}
    served = serve_in_fresh_process(tmp_path / "export" / "toy" / "1", {"text": ["a lovely film"]})
    assert np.sum(served["probabilities"]) == pytest.approx(1.0, abs=1e-6)


def test_export_serves_raw_strings_in_a_process_without_tfllm(trained):
    tmp_path, _ = trained
    export = tmp_path / "export" / "toy" / "1"
    assert (export / "saved_model.pb").exists()
    assert not [p for p in (tmp_path / "export" / "toy").iterdir() if p.name.startswith(".tmp")]
    sentences = ["the movie was really superb", "a boring story", "the plot was quite awful acting"]
    served = serve_in_fresh_process(export, {"text": sentences})
    assert served["label_name"] == ["positive", "negative", "negative"]

    # Same numbers as the Keras model restored from the run's checkpoint, in this process.


    pre = BertPreprocessor(str(tmp_path / "model" / "vocab.txt"), sequence_length=16)
    model = BertClassifier(Bert.from_preset("bert_nano", vocabulary_size=pre.tokenizer.vocabulary_size(),
                                            max_sequence_length=512, dropout=0.0), 2, dropout=0.0)
    checkpoint = tf.train.latest_checkpoint(tmp_path / "model" / "checkpoints")
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    probs = tf.nn.softmax(model(pre(tf.constant(sentences)))).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"]), probs, atol=1e-5)


def test_query_tool_prints_labels(trained):
    tmp_path, _ = trained
    proc = run_script("tools/query_savedmodel.py", tmp_path / "export" / "toy" / "1", "a lovely film")
    assert "positive" in proc.stdout and "a lovely film" in proc.stdout


def test_a_run_folder_that_only_tf_io_gfile_reaches(trained, tmp_path):
    """--model_dir on ram:// (TensorFlow's in-memory filesystem), as on gs:// for a TPU: checkpoints, TensorBoard,
    config, vocabulary and final weights go there, a rerun resumes from it, and the export is rebuilt from it.
    Nothing may land in a local folder named after the URL (`open("ram://...")` would write to ./ram:/...)."""
    data = trained[0]
    model_dir = f"ram://classify-{uuid.uuid4().hex[:8]}/model"  # the script process keeps ram:// between runs
    args = [f"--train_file={data / 'train.tsv'}", f"--eval_file={data / 'dev.tsv'}", f"--model_dir={model_dir}",
            "--model_name=toy", "--preset=bert_nano", "--vocab_size=120", "--max_seq_length=16", "--batch_size=32",
            "--learning_rate=3e-3", "--dropout=0.0", "--strategy=cpu", "--max_train_examples=128", "--log_every=4",
            "--checkpoint_every=4"]
    first = run_script("recipes/classify.py", *args, "--epochs=1")
    assert f"Saved checkpoint {model_dir}/checkpoints/ckpt-4" in first.stderr, first.stderr[-3000:]
    again = run_script("recipes/classify.py", *args, "--epochs=2", f"--export_dir={tmp_path / 'export'}")
    assert "Resumed from step 4" in again.stderr and "step 8/8" in again.stderr, again.stderr[-3000:]
    assert f"restored: {model_dir}/model.weights.h5" in again.stderr, again.stderr[-3000:]
    assert not (ROOT / "ram:").exists()
    served = serve_in_fresh_process(tmp_path / "export" / "toy" / "1", {"text": ["a lovely film", "a dull plot"]})
    assert np.sum(served["probabilities"], axis=-1) == pytest.approx([1.0, 1.0], abs=1e-6)


@pytest.mark.parametrize("content,expected", [
    ("label\ttext\n1\thello\n", "no column 'sentence'"),
    ("label\tsentence\n1\tfine\n7\tbad\n", "train.tsv: line 3: label 7 in column 'label' out of range"),
])
def test_bad_data_fails_with_file_and_line(tmp_path, content, expected):
    (tmp_path / "train.tsv").write_text(content)
    (tmp_path / "dev.tsv").write_text(content)
    proc = run_recipe(tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert str(tmp_path / "train.tsv") in proc.stderr and expected in proc.stderr, proc.stderr[-2000:]
