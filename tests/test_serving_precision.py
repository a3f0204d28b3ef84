"""`--serving_precision`: exports that compute in float32, bfloat16 or int8, whatever policy the run trained under.

A toy classifier (and a tagger) saved the way a `--mixed_precision=bf16`
run saves it (a `mixed_bfloat16` policy in config.json) is exported by
`export_folder` at each precision and served in one fresh TF-only process.
The reference is the same weights in a float32 Keras model in this process:
the default export equals it within 1e-5 (it computes in float32 although
the run trained in bf16); bfloat16 and int8 are within their tolerances,
with the same labels; the SavedModels' variables have the dtypes asked for.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.fresh_process import serve_calls_in_fresh_process
from tests.run_script import run_script
from tfllm import export
from tfllm.errors import ConfigError
from tfllm.export.serving_precision import resolve_serving_precision
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertTokenClassifier
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import load
from tfllm.models import save_config
from tfllm.models import save_pretrained
from tfllm.models.bert.bert_classifier import masked_mean
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.tokenizers.char_tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a of in is was film movie good bad great awful plot acting not very".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", ",", "!"]
TEXTS = ["the film was good !", "a bad , bad movie", "not very great acting", "", "awful plot . " * 6,
         "the acting of the film is very good , the plot is not"]
TOLERANCES = {"float32": 1e-5, "bfloat16": 2e-2, "int8": 3e-2}  # max |probability - float32 Keras|; the head
# is scaled x60 (decisive labels), which scales rounding errors too: trained models measure ~3e-3 (docs/serving.md)
VECTOR_TOLERANCES = {"bfloat16": 5e-2, "int8": 2e-2}  # max |sentence vector - float32 Keras|, vectors of norm ~1-5


def preprocessor():
    return BertPreprocessor(VOCAB, sequence_length=32, lowercase=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A bf16-trained toy classifier and tagger run, exported at every precision; every request in ONE process."""
    tmp = tmp_path_factory.mktemp("precision")
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # what --mixed_precision=bf16 sets
    try:
        classifier = BertClassifier(Bert.from_preset("bert_nano", vocabulary_size=len(VOCAB), dropout=0.0), 3,
                                    pooling="mean", dropout=0.0)
        tagger = BertTokenClassifier(Bert.from_preset("bert_nano", vocabulary_size=len(VOCAB), dropout=0.0), 3,
                                     dropout=0.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    logits = classifier.get_layer("logits")
    logits.kernel.assign(logits.kernel * 60.0)  # decisive, varied labels (random ones are all near 1/3)
    save_pretrained(classifier, tmp / "clf_run", preprocessor(), labels=["neg", "mid", "pos"])
    save_pretrained(tagger, tmp / "tag_run", preprocessor(), labels=["O", "B-X", "I-X"])
    logs, paths = {}, {}
    for precision in ("float32", "bfloat16", "int8"):
        logs[precision] = []
        paths[precision] = export.export_folder(tmp / "clf_run", tmp / "out", model_name=f"clf_{precision}",
                                                warmup=False, log=logs[precision].append,
                                                **({} if precision == "float32" else
                                                   {"serving_precision": precision}))
        paths[f"vectors_{precision}"] = export.export_folder(tmp / "clf_run", tmp / "out", head="embeddings",
                                                             model_name=f"vectors_{precision}", warmup=False,
                                                             serving_precision=precision, log=lambda _: None)
    paths["tagger"] = export.export_folder(tmp / "tag_run", tmp / "out", model_name="tagger", warmup=False,
                                           serving_precision="bf16", log=lambda _: None)
    names = [name for name in paths if name != "tagger"]
    replies = serve_calls_in_fresh_process([(paths[n], "serving_default", {"text": TEXTS}) for n in names]
                                           + [(paths["tagger"], "serving_default", {"text": TEXTS[:3]})])
    float32 = load(tmp / "clf_run", dtype="float32").model  # the same weights, float32 Keras
    return dict(paths=paths, logs=logs, replies=dict(zip(names + ["tagger"], replies)), float32=float32,
                trained=classifier, tagger=load(tmp / "tag_run", dtype="float32").model)


def variable_dtypes(savedmodel_dir):
    reader = tf.train.load_checkpoint(str(Path(savedmodel_dir) / "variables" / "variables"))
    return {name: dtype for name, dtype in reader.get_variable_to_dtype_map().items() if "kernel" in name}


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_each_precision_matches_the_float32_keras_model(exported, precision):
    features = preprocessor()(tf.constant(TEXTS))
    expected = tf.nn.softmax(exported["float32"](features)).numpy()
    reply = exported["replies"][precision]
    assert "error" not in reply, reply
    probabilities = np.array(reply["probabilities"])
    np.testing.assert_allclose(probabilities, expected, atol=TOLERANCES[precision], rtol=0)
    assert reply["label"] == expected.argmax(-1).tolist()
    top_two = np.sort(expected, axis=-1)[:, -2:]
    assert (top_two[:, 1] - top_two[:, 0]).min() > 0.05 and len(set(reply["label"])) > 1  # equal labels mean something
    if precision != "float32":  # really computed in the other precision, not float32 again
        assert np.abs(probabilities - expected).max() > 1e-6


def test_default_export_of_a_bf16_run_computes_in_float32(exported):
    assert exported["trained"].dtype_policy.name == "mixed_bfloat16"
    assert exported["logs"]["float32"][-1] == ("serving precision: float32 (float32 weights and compute; "
                                               "trained under the mixed_bfloat16 policy)")
    assert set(variable_dtypes(exported["paths"]["float32"]).values()) == {tf.float32}
    # The bf16-trained model itself computes differently: the export did not keep its policy.
    features = preprocessor()(tf.constant(TEXTS))
    assert np.abs(tf.nn.softmax(exported["trained"](features)).numpy()
                  - tf.nn.softmax(exported["float32"](features)).numpy()).max() > 1e-4


def test_variables_have_the_precision_asked_for(exported):
    assert set(variable_dtypes(exported["paths"]["bfloat16"]).values()) == {tf.bfloat16}
    # Every projection, tfllm's EinsumDense attention ones too (Keras skips subclasses unless told), is int8.
    kernels = {name: dtype for name, dtype in variable_dtypes(exported["paths"]["int8"]).items()
               if name.endswith("kernel/.ATTRIBUTES/VARIABLE_VALUE")}
    assert len(kernels) == 8 and set(kernels.values()) == {tf.int8}, kernels  # q, k, v, o, 2 FFN, pooler, logits
    assert exported["logs"]["bfloat16"][-1].startswith("serving precision: bfloat16 (bfloat16 weights and matmuls")


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_embeddings_and_tagger_exports_take_the_precision(exported, precision):
    features = preprocessor()(tf.constant(TEXTS))
    outputs = exported["float32"].backbone(features)
    expected = masked_mean(outputs["sequence_output"], features["padding_mask"]).numpy()
    vectors = np.array(exported["replies"][f"vectors_{precision}"]["mean_pooled_output"])
    np.testing.assert_allclose(vectors, expected, atol=VECTOR_TOLERANCES[precision], rtol=0)
    np.testing.assert_allclose(np.array(exported["replies"]["vectors_float32"]["mean_pooled_output"]), expected,
                               atol=1e-5, rtol=0)
    if precision == "bfloat16":  # the tagger: per-word tag probabilities of its first sub-word, in bf16
        reply = exported["replies"]["tagger"]
        assert "error" not in reply, reply
        assert set(variable_dtypes(exported["paths"]["tagger"]).values()) == {tf.bfloat16}
        scores = np.array(reply["scores"])
        assert scores.shape[0] == 3 and ((scores >= 0) & (scores <= 1)).all()


def test_spellings_and_bad_values():
    assert [resolve_serving_precision(v) for v in ("fp32", "BF16", "bfloat16", "int8")] == \
        ["float32", "bfloat16", "bfloat16", "int8"]
    with pytest.raises(ConfigError, match=re.escape("--serving_precision=fp16: expected one of float32, bfloat16, "
                                                    "int8 (or fp32, bf16)")):
        resolve_serving_precision("fp16")


def test_gpt_and_translator_exports_refuse_what_they_lack_before_loading(tmp_path):
    chars = CharTokenizer.from_text("abc")
    lm = GptCausalLM(Gpt.from_preset("gpt_nano", vocabulary_size=chars.vocabulary_size()), tokenizer=chars)
    save_config(lm, tmp_path / "lm")  # no weights: the flag is checked first
    with pytest.raises(ConfigError, match=re.escape("--serving_precision=int8: the gpt export is float32 or "
                                                    "bfloat16 for now")):
        export.export_folder(tmp_path / "lm", tmp_path / "out", serving_precision="int8")


def test_export_tool_refuses_a_bad_precision_while_parsing_flags(exported, tmp_path):
    """The same enum as the recipes' flag (case-insensitive): absl refuses the value before anything loads."""
    run = Path(exported["paths"]["float32"]).parents[2] / "clf_run"
    proc = run_script("tools/export.py", run, tmp_path / "out", "--serving_precision=fp16", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: flag --serving_precision=fp16: value should be one of <float32|bfloat16|int8|fp32|bf16> "
                      "(--helpfull lists the flags)"], proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_benchmark_serve_model_dir_reports_accuracy_per_precision(exported, tmp_path, capsys):
    """tools/benchmark.py serve --serve_model_dir: each precision's accuracy on a labelled file (here labelled
    with the float32 model's own predictions, so float32 and int8, whose labels agree above, score 1)."""
    from tools.bench import serve  # noqa: PLC0415  (imports keras_hub: only this test needs it)

    labels = np.array(exported["replies"]["float32"]["label"])
    rows = [f"{text}\t{label}" for text, label in zip(TEXTS, labels) if text]  # the reader skips empty texts
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    run = Path(exported["paths"]["float32"]).parents[2] / "clf_run"
    sides = serve.model_dir_sides(str(run), ["float32", "int8"], str(tmp_path / "out"))
    serve.accuracy_table(sides, str(tmp_path / "dev.tsv"), batch=2)
    table = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("tfllm")]
    assert [(row[2], row[3], row[4]) for row in table] == [("float32", "1.0000", "1.0000"),
                                                           ("int8", "1.0000", "1.0000")], table
