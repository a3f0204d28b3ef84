"""GLUE-style fine-tuning: sentence pairs, string labels, regression, headerless files, their metrics and exports.

References are independent: Hugging Face's BertTokenizerFast for the pair
encoding, scikit-learn and scipy for the metrics, the Keras model in this
process for the served numbers. Two toy runs of recipes/classify.py (a pair
classifier with string labels, a pair regressor read from a headerless file)
are shared by the recipe and export tests.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import SHARED_DATA
from tests.fresh_process import rest_predict_in_fresh_process
from tests.fresh_process import serve_calls_in_fresh_process
from tests.run_script import run_script
from tfllm import export
from tfllm.data import read_text_examples
from tfllm.errors import DataError
from tfllm.export import read_warmup_requests
from tfllm.metrics import classification
from tfllm.models import load
from tfllm.models.bert.bert_preprocessor import BertPreprocessor

ROOT = Path(__file__).resolve().parents[1]
MRPC = SHARED_DATA / "glue" / "MRPC"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---- Pair encoding: identical to Hugging Face ---------------------------------------------


@pytest.fixture(scope="module")
def mrpc_pairs():
    if not (MRPC / "dev.tsv").exists():
        pytest.skip(f"shared GLUE data not found at {MRPC}")
    (a, b), labels = read_text_examples(MRPC / "dev.tsv", "#1 String", "#2 String", "Quality")
    assert len(a) == len(b) == len(labels) == 408
    return a, b


@pytest.fixture(scope="module")
def mrpc_vocab(mrpc_pairs, tmp_path_factory):
    """A WordPiece vocabulary trained on MRPC dev by Hugging Face's trainer (the reference's own)."""
    import tokenizers as hf  # noqa: PLC0415  (a test extra, like transformers)

    trainer = hf.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(mrpc_pairs[0] + mrpc_pairs[1], vocab_size=800, special_tokens=SPECIAL)
    path = tmp_path_factory.mktemp("mrpc_vocab") / "vocab.txt"
    path.write_text("".join(t + "\n" for t, _ in sorted(trainer.get_vocab().items(), key=lambda kv: kv[1])))
    return path


def hf_tokenizer(vocab_file):
    """Hugging Face's BERT tokenizer (the Rust `tokenizers` one: BertTokenizerFast is BertTokenizer in v5)."""
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True)


@pytest.mark.parametrize("max_length", [24, 33, 64])
def test_pair_encoding_matches_hugging_face(mrpc_pairs, mrpc_vocab, max_length):
    a, b = mrpc_pairs
    reference = hf_tokenizer(mrpc_vocab)(
        a, b, truncation=True, max_length=max_length, padding="max_length")
    expected_ids, expected_types = np.array(reference["input_ids"]), np.array(reference["token_type_ids"])

    pre = BertPreprocessor(str(mrpc_vocab), sequence_length=max_length)
    packed = pre((tf.constant(a), tf.constant(b)))
    np.testing.assert_array_equal(packed["token_ids"].numpy(), expected_ids)
    np.testing.assert_array_equal(packed["segment_ids"].numpy(), expected_types)
    np.testing.assert_array_equal(packed["padding_mask"].numpy(), np.array(reference["attention_mask"]) == 1)

    # The training pipeline's ragged packing, and its count of pairs cut.
    ragged, num_truncated = pre.pack_ragged((a, b))
    np.testing.assert_array_equal(ragged["token_ids"].to_tensor(0, shape=[None, max_length]).numpy(), expected_ids)
    np.testing.assert_array_equal(ragged["segment_ids"].to_tensor(0, shape=[None, max_length]).numpy(),
                                  expected_types)
    full = hf_tokenizer(mrpc_vocab)(a, b)["input_ids"]
    assert num_truncated == sum(len(ids) > max_length for ids in full)
    if max_length < 64:
        assert num_truncated > 100
    if max_length == 24:  # an odd budget (21 = 24 - 3): keras-hub's round robin gives the odd token to `a` instead
        round_robin = BertPreprocessor(str(mrpc_vocab), sequence_length=max_length, truncate="round_robin")
        assert not np.array_equal(round_robin((tf.constant(a), tf.constant(b)))["token_ids"].numpy(), expected_ids)


def test_single_text_encoding_matches_hugging_face(mrpc_pairs, mrpc_vocab):
    a = mrpc_pairs[0]
    reference = hf_tokenizer(mrpc_vocab)(
        a, truncation=True, max_length=20, padding="max_length")
    ids = BertPreprocessor(str(mrpc_vocab), sequence_length=20)(tf.constant(a))["token_ids"].numpy()
    np.testing.assert_array_equal(ids, np.array(reference["input_ids"]))


# ---- Metrics: equal to scikit-learn and scipy --------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_classification_metrics_match_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    labels = rng.integers(0, 2, n)
    predictions = np.where(rng.random(n) < 0.7, labels, 1 - labels)  # better than chance, not perfect
    assert classification.accuracy(labels, predictions) == pytest.approx(metrics.accuracy_score(labels, predictions))
    assert classification.f1_score(labels, predictions) == pytest.approx(metrics.f1_score(labels, predictions))
    assert classification.matthews_correlation(labels, predictions) == pytest.approx(
        metrics.matthews_corrcoef(labels, predictions))
    three_labels, three_predictions = rng.integers(0, 3, n), rng.integers(0, 3, n)
    assert classification.matthews_correlation(three_labels, three_predictions) == pytest.approx(
        metrics.matthews_corrcoef(three_labels, three_predictions))
    scores = classification.classification_scores(labels, predictions)
    assert set(scores) == {"accuracy", "f1", "matthews_correlation"}
    assert "f1" not in classification.classification_scores(three_labels, three_predictions, num_classes=3)


@pytest.mark.parametrize("seed", range(4))
def test_correlations_match_scipy(seed):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 500))
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    tied_x, tied_y = np.round(x * 2) / 2, rng.integers(0, 6, n).astype(float)  # STS-B-like scores: many ties
    assert classification.pearson_correlation(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert classification.spearman_correlation(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert classification.spearman_correlation(tied_x, tied_y) == pytest.approx(
        stats.spearmanr(tied_x, tied_y)[0], abs=1e-12)
    assert classification.regression_scores(tied_x, tied_y)["pearson"] == pytest.approx(
        stats.pearsonr(tied_x, tied_y)[0], abs=1e-12)


def test_undefined_scores_are_zero():
    constant = np.zeros(6)
    assert classification.pearson_correlation(constant, np.arange(6)) == 0.0
    assert classification.spearman_correlation(np.arange(6), constant) == 0.0
    assert classification.matthews_correlation(np.array([0, 1, 0, 1]), np.zeros(4, int)) == 0.0
    assert classification.f1_score(np.zeros(4, int), np.zeros(4, int)) == 0.0
    with pytest.raises(ValueError, match="same length"):
        classification.accuracy([0, 1], [0])


# ---- Reading pairs, string labels, scores, headerless files ------------------------------


def test_reader_pairs_string_labels_scores_and_positional_columns(tmp_path):
    rte = tmp_path / "rte.tsv"
    rte.write_text("\ufeffindex\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tentailment\n"
                   "1\tA cat.\tA dog.\tnot_entailment\n2\tX.\tY.\t1\n")
    (a, b), labels = read_text_examples(rte, "sentence1", "sentence2", label_names=["entailment", "not_entailment"])
    assert (a, b) == (["A man.", "A cat.", "X."], ["A person.", "A dog.", "Y."])
    assert labels.tolist() == [0, 1, 1] and labels.dtype == np.int32

    stsb = tmp_path / "stsb.tsv"
    stsb.write_text("s1\ts2\tscore\nA.\tB.\t4.750\nC.\tD.\t0\n")
    (_, _), scores = read_text_examples(stsb, "s1", "s2", "score", task="regression")
    assert scores.tolist() == [4.75, 0.0] and scores.dtype == np.float32

    cola = tmp_path / "cola.tsv"
    cola.write_text("gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe more the.")  # no final newline
    texts, labels = read_text_examples(cola, columns=["source", "label", "mark", "sentence"])
    assert texts == ["The sailors rode the breeze.", "The more the."] and labels.tolist() == [1, 0]


@pytest.mark.parametrize("content,kwargs,message", [
    ("i\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tneutral\n",
     dict(text_b_column="s2", label_names=["entailment", "not_entailment"]),
     "line 3: label 'neutral' in column 'label': expected one of entailment, not_entailment or an integer id"),
    ("i\ts1\ts2\tlabel\n0\ta\tb\t2\n", dict(text_b_column="s2", label_names=["entailment", "not_entailment"]),
     "line 2: label 2 in column 'label' out of range, expected 0..1"),
    ("i\ts1\tlabel\n0\ta\t1\n", dict(text_b_column="s2"),
     "line 1: no column 's2'; columns found: ['i', 's1', 'label']"),
    ("s1\ts2\tlabel\na\tb\t3.5\nc\td\thigh\n", dict(text_b_column="s2", task="regression"),
     "line 3: label 'high' in column 'label': expected a finite number (regression)"),
    ("s1\ts2\tlabel\na\t \t1\n", dict(text_b_column="s2"), "line 2: empty text in column 's2'"),
    ("x\t1\t\tok\nx\t0\tbad row\n", dict(text_column="sentence", columns=["source", "label", "mark", "sentence"]),
     "line 2: expected 4 fields (source, label, mark, sentence), found 3"),
    ("sentence\tlabel\na film\t1\n", dict(text_column="sentence", columns=["label", "sentence"]),
     "line 1 is a header row (sentence, label), but the columns were named for a file without one"),
])
def test_reader_errors_name_file_and_line(tmp_path, content, kwargs, message):
    path = tmp_path / "data.tsv"
    path.write_text(content)
    kwargs = dict(dict(text_column="s1"), **kwargs)
    with pytest.raises(DataError) as error:
        read_text_examples(path, **kwargs)
    assert str(error.value).startswith(f"{path}:") and message in str(error.value), error.value
    assert "\n" not in str(error.value)


# ---- Toy runs of recipes/classify.py ------------------------------------------------------

FILLER = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "far", "big", "small", "house"]


def write_toy_pairs(path, n, seed, header=True, regression=False):
    """Pairs whose label is learnable by a tiny model in seconds.

    Classification: `entailment` when the second text holds "yes", `not_entailment` when it holds "no".
    Regression: the score is how many times "good" occurs in the pair (0-4).
    """
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        if header:
            f.write("index\tsentence1\tsentence2\tlabel\n")
        for i in range(n):
            a, b = (list(rng.choice(FILLER, size=int(rng.integers(2, 5)))) for _ in range(2))
            if regression:
                label = int(rng.integers(5))
                for _ in range(label):
                    words = a if rng.random() < 0.5 else b
                    words.insert(int(rng.integers(len(words) + 1)), "good")
                label = f"{label:.3f}"
            else:
                label = ["entailment", "not_entailment"][int(rng.integers(2))]
                b.insert(int(rng.integers(len(b) + 1)), "yes" if label == "entailment" else "no")
            f.write(f"{i}\t{' '.join(a)}\t{' '.join(b)}\t{label}\n")


def run_classify(tmp_path, *extra, check=True):
    return run_script(
        "recipes/classify.py", f"--train_file={tmp_path / 'train.tsv'}", f"--eval_file={tmp_path / 'dev.tsv'}",
        f"--model_dir={tmp_path / 'model'}", "--preset=bert_nano", "--vocab_size=100", "--max_seq_length=24",
        "--batch_size=32", "--learning_rate=3e-3", "--epochs=6", "--dropout=0.0", "--strategy=cpu",
        "--log_every=20", "--checkpoint_every=1000", "--text_column=sentence1", "--text_b_column=sentence2",
        *extra, check=check,
    )


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A pair classifier with string labels, exported by the recipe."""
    tmp_path = tmp_path_factory.mktemp("pairs")
    write_toy_pairs(tmp_path / "train.tsv", 640, seed=0)
    write_toy_pairs(tmp_path / "dev.tsv", 200, seed=1)
    proc = run_classify(tmp_path, "--label_names=entailment,not_entailment", f"--export_dir={tmp_path / 'export'}",
                        "--model_name=pairs")
    return tmp_path, proc


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    """A pair regressor read from headerless files (columns named by position); exported by tools/export.py."""
    tmp_path = tmp_path_factory.mktemp("regression")
    write_toy_pairs(tmp_path / "train.tsv", 640, seed=2, header=False, regression=True)
    write_toy_pairs(tmp_path / "dev.tsv", 200, seed=3, header=False, regression=True)
    proc = run_classify(tmp_path, "--task=regression", "--columns=index,sentence1,sentence2,label", "--pooling=mean")
    export.export_folder(tmp_path / "model", tmp_path / "export", model_name="scores", log=lambda line: None)
    return tmp_path, proc


def test_pair_classifier_learns_and_reports_every_metric(pair_run):
    tmp_path, proc = pair_run
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert results["examples"] == 200 and results["accuracy"] >= 0.9, results
    assert {"loss", "accuracy", "f1", "matthews_correlation"} <= set(results)
    assert results["matthews_correlation"] > 0.8
    eval_line = next(line for line in proc.stdout.splitlines() if line.startswith("eval:"))
    assert all(name in eval_line for name in ("accuracy", "f1", "matthews_correlation"))
    assert "of 640 pairs truncated to 24 tokens" in proc.stderr  # the truncation count, for pairs
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["labels"] == ["entailment", "not_entailment"]
    assert config["serving"] == {"task": "classification", "text_pair": True}


def test_regression_learns_the_toy_scores(regression_run):
    tmp_path, proc = regression_run
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    _, scores = read_text_examples(tmp_path / "dev.tsv", "sentence1", "sentence2", task="regression",
                                   columns=["index", "sentence1", "sentence2", "label"])
    assert results["loss"] < 0.2 * scores.var(), (results, scores.var())  # mean squared error
    assert results["pearson"] > 0.9 and results["spearman"] > 0.9, results
    assert "accuracy" not in results and "f1" not in results
    assert json.loads((tmp_path / "model" / "config.json").read_text())["serving"] == {
        "task": "regression", "text_pair": True}


PAIRS = [("the cat sat", "a dog ran yes"), ("big house", "no small mat on the"),
         (" ".join(["the"] * 12), " ".join(["far", "yes"] + ["far"] * 12))]  # the last pair is cut to 24 tokens
SCORED = [("good cat", "good good dog"), ("the mat", "a house"), ("good", "small good far")]


def test_pair_and_regression_exports_equal_keras_in_a_fresh_process(pair_run, regression_run):
    pairs_export = pair_run[0] / "export" / "pairs" / "1"
    scores_export = regression_run[0] / "export" / "scores" / "1"
    columns = lambda examples: {"text": [a for a, _ in examples], "text_pair": [b for _, b in examples]}  # noqa: E731
    served = serve_calls_in_fresh_process([
        (pairs_export, "serving_default", columns(PAIRS)),
        (scores_export, "serving_default", columns(SCORED)),
        (pairs_export, "serving_default", {"text": ["one", "two"], "text_pair": ["only one"]}),
    ])
    for run, examples, reply in [(pair_run, PAIRS, served[0]), (regression_run, SCORED, served[1])]:
        loaded = load(run[0] / "model")
        pre = loaded.preprocessor()
        outputs = loaded.model(pre((tf.constant([a for a, _ in examples]), tf.constant([b for _, b in examples]))))
        if loaded.serving["task"] == "regression":
            assert set(reply) == {"score"}
            np.testing.assert_allclose(reply["score"], outputs.numpy()[:, 0], atol=1e-5, rtol=0)
        else:
            probabilities = tf.nn.softmax(outputs).numpy()
            np.testing.assert_allclose(reply["probabilities"], probabilities, atol=1e-5, rtol=0)
            assert reply["label"] == probabilities.argmax(-1).tolist()
            assert reply["label_name"] == ["entailment", "not_entailment", "entailment"]  # yes / no / yes
    assert "`text` and `text_pair` must have the same batch size" in served[2]["error"]

    # TF Serving's REST bodies (docs/serving.md): rows of pairs, columns; `text_pair` is required.
    rows, scores, missing = rest_predict_in_fresh_process([
        (pairs_export, {"instances": [{"text": a, "text_pair": b} for a, b in PAIRS]}),
        (scores_export, {"inputs": columns(SCORED)}),
        (scores_export, {"inputs": {"text": ["one"]}}),
    ])
    assert [row["label_name"] for row in rows["predictions"]] == served[0]["label_name"]
    assert scores["outputs"] == served[1]["score"]
    assert "missing: ['text_pair']" in missing["error"], missing
    # The warmup requests hold pairs.
    for exported in (pairs_export, scores_export):
        requests = read_warmup_requests(exported)
        assert [len(inputs["text_pair"]) for _, inputs in requests] == [1, 2]


def test_bad_label_fails_the_recipe_with_file_and_line(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    (tmp_path / "train.tsv").write_text(header + "0\ta\tb\tentailment\n1\ta\tb\tcontradiction\n")
    (tmp_path / "dev.tsv").write_text(header)
    proc = run_classify(tmp_path, "--label_names=entailment,not_entailment", check=False)
    assert proc.returncode == 2
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error == (f"error: {tmp_path / 'train.tsv'}: line 3: label 'contradiction' in column 'label': "
                     "expected one of entailment, not_entailment or an integer id")
