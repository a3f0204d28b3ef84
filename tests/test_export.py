"""Every export head, served the way TF Serving would: REST bodies in a process with only TF + tensorflow_text.

Tiny random models; each head's replies are compared with the same model
run in this process through the training-time data path (preprocessor,
`encode_tagged_sentences`, `squad_features` + `decode_answers`, `generate`).
"""

import dataclasses
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from tests.fresh_process import rest_predict_in_fresh_process
from tests.run_script import run_script
from tfllm import export
from tfllm.data.conll import TaggedSentence
from tfllm.data.span_decoding import decode_answers
from tfllm.data.squad import SquadExample
from tfllm.data.squad import squad_dataset
from tfllm.data.squad import squad_features
from tfllm.data.token_classification import encode_tagged_sentences
from tfllm.data.token_classification import tagging_dataset
from tfllm.errors import CheckpointError
from tfllm.errors import ConfigError
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertSpanQA
from tfllm.models import BertTokenClassifier
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import cast_weights
from tfllm.models import save_config
from tfllm.models.bert.bert_classifier import masked_mean
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.tokenizers.char_tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the a of in is was film movie good bad paris france tower where who what when eiffel built "
         "merkel angela visited on monday city river caf zurich").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##e", "##s", "##ing", ".", ",", "?", "!", "'"]
SENTENCES = ["The film was good!", "a bad, bad movie", "Café in Zürich", "", "who built the Eiffel tower?"]
TAG_SENTENCES = ["Angela Merkel visited Paris on Monday.", "the city , the river",
                 " ".join(["paris"] * 20),  # longer than the window: the last words are cut off
                 "Zürich's café\u00a0visited"]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
QA = [("Where is the tower?", "The Eiffel tower is in Paris, France."),
      ("who visited?", "Angela Merkel visited Zürich's café on Monday."),
      ("what?", ""),
      ("when was the tower built", "the tower was built in Paris " * 6)]  # truncated to one window
ATOL = 1e-5


def preprocessor(sequence_length):
    return BertPreprocessor(VOCAB, sequence_length=sequence_length, lowercase=True)


def bert():
    return Bert.from_preset("bert_nano", vocabulary_size=len(VOCAB), dropout=0.0)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Exports every head, then answers every request body in ONE fresh process (startup dominates)."""
    tmp = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    m = {}
    m["pre"], m["qa_pre"] = preprocessor(16), preprocessor(32)
    m["classifier"] = BertClassifier(bert(), 3, dropout=0.0)
    m["tagger"] = BertTokenClassifier(bert(), len(TAGS), dropout=0.0)
    m["qa"] = BertSpanQA(bert())
    chars = CharTokenizer.from_text("abcdefgh xyz")
    m["lm"] = GptCausalLM(Gpt.from_preset("gpt_nano", vocabulary_size=chars.vocabulary_size(), dropout=0.0),
                          tokenizer=chars)
    paths = {
        "classifier": export.export_classifier(m["pre"], m["classifier"], tmp, "clf", 3,
                                               label_names=["neg", "neutral", "pos"]),
        "embeddings": export.export_embeddings(m["pre"], m["classifier"].backbone, tmp, "vectors"),
        "tagger": export.export_tagger(m["pre"], m["tagger"], TAGS, tmp, "ner"),
        "gpt": export.export_gpt(m["lm"], tmp, "gpt", max_new_tokens=6),
    }
    # The same LM exported with bfloat16 weights (not in `paths`: one more "gpt" head, not a new head).
    bf16_gpt = export.export_gpt(m["lm"], tmp, "gpt_bf16", max_new_tokens=6, precision="bfloat16")
    # span_qa goes through tools/export.py from a recipe-style model_dir (config.json + checkpoint).
    run = tmp / "qa_run"
    save_config(m["qa"], run, m["qa_pre"], serving=dict(max_query_length=6, max_answer_length=4))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=m["qa"]), run / "checkpoints", 1).save(7)
    printed = []
    export.export_folder(run, tmp, model_name="qa", version=2, log=printed.append)
    assert printed == [f"restored: {run / 'checkpoints' / 'ckpt-7'}",
                       "serving precision: float32 (float32 weights and compute)"]
    paths["span_qa"] = tmp / "qa" / "2"

    questions, contexts = (list(x) for x in zip(*QA))
    requests = {
        "clf_rows": (paths["classifier"], {"instances": SENTENCES}),
        "clf_columns": (paths["classifier"], {"inputs": {"text": SENTENCES}}),
        "vectors": (paths["embeddings"], {"signature_name": "serving_default", "inputs": SENTENCES}),
        "ner": (paths["tagger"], {"instances": TAG_SENTENCES}),
        "qa_rows": (paths["span_qa"], {"instances": [{"question": q, "context": c} for q, c in QA]}),
        "qa_columns": (paths["span_qa"], {"inputs": {"question": questions, "context": contexts}}),
        "gpt": (paths["gpt"], {"inputs": {"prompt": ["abc", "h", "fgh a"]}}),
        "gpt_bf16": (bf16_gpt, {"inputs": {"prompt": ["abc", "h", "fgh a"]}}),
        "gpt_options": (paths["gpt"], {"signature_name": "generate", "inputs": {
            "prompt": ["abc", "h", "fgh a"], "max_new_tokens": 3, "temperature": 0.0, "top_k": 0, "seed": 0}}),
        # Bad requests: a clear error each, no crash.
        "bad_dtype": (paths["classifier"], {"instances": [1, 2]}),
        "bad_rank": (paths["classifier"], {"inputs": {"text": [["nested", "list"]]}}),
        "bad_scalar": (paths["embeddings"], {"inputs": "just one string"}),
        "missing_input": (paths["span_qa"], {"instances": [{"question": "where?"}]}),
        "missing_columnar": (paths["span_qa"], {"inputs": {"question": ["where?"]}}),
        "batch_mismatch": (paths["span_qa"], {"inputs": {"question": ["a", "b"], "context": ["a"]}}),
        "bad_signature": (paths["classifier"], {"signature_name": "nope", "instances": ["x"]}),
        # Latin-1 bytes (b64, as TF Serving's REST API takes bytes): refused, not turned into [UNK].
        "not_utf8": (paths["classifier"], {"inputs": {"text": [{"b64": "Y2Fm6Q=="}, "fine", {"b64": "/w=="}]}}),
        "too_many_tokens": (paths["gpt"], {"signature_name": "generate", "inputs": {
            "prompt": ["abc"], "max_new_tokens": 7, "temperature": 0.0, "top_k": 0, "seed": 0}}),
    }
    warmups = []
    for head, path in paths.items():
        for signature, inputs in export.read_warmup_requests(path):
            body = {"signature_name": signature, "inputs": {
                k: np.char.decode(v.astype(bytes)).tolist() if v.dtype == object else v.tolist()
                for k, v in inputs.items()}}
            warmups.append((head, (path, body)))
    keys = list(requests)
    replies = rest_predict_in_fresh_process([requests[k] for k in keys] + [r for _, r in warmups])
    return dict(models=m, paths=paths, replies=dict(zip(keys, replies)),
                warmup=[(head, body, reply) for (head, (_, body)), reply in zip(warmups, replies[len(keys):])])


def test_layout_and_warmup_file(served):
    for head, path in served["paths"].items():
        path = Path(path)
        assert (path / "saved_model.pb").exists() and (path / export.WARMUP_FILE).exists(), head
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]
    assert Path(served["paths"]["classifier"]).parts[-2:] == ("clf", "3")
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415  (the `serving` extra: only this test needs it)

    record = next(iter(tf.data.TFRecordDataset(str(Path(served["paths"]["tagger"]) / export.WARMUP_FILE))))
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    assert request.model_spec.name == "ner" and request.model_spec.signature_name == "serving_default"


def test_warmup_requests_replay_through_the_signatures(served):
    heads = {head for head, _, _ in served["warmup"]}
    # The translator needs a trained seq2seq run: tests/test_seq2seq.py replays its warmup requests.
    assert heads == set(export.HEADS) - {"translator"}
    for head, body, reply in served["warmup"]:
        assert "error" not in reply, (head, reply)
        batch = len(next(v for v in body["inputs"].values() if isinstance(v, list)))
        outputs = reply["outputs"]
        assert all(len(v) == batch for v in (outputs.values() if isinstance(outputs, dict) else [outputs])), head
    assert any(body["signature_name"] == "generate" for head, body, _ in served["warmup"])


def test_classifier_matches_keras_in_both_rest_formats(served):
    m, replies = served["models"], served["replies"]
    probabilities = tf.nn.softmax(m["classifier"](m["pre"](tf.constant(SENTENCES)))).numpy()
    rows, columns = replies["clf_rows"]["predictions"], replies["clf_columns"]["outputs"]
    assert [r["probabilities"] for r in rows] == columns["probabilities"]
    np.testing.assert_allclose(np.array(columns["probabilities"]), probabilities, atol=ATOL, rtol=0)
    assert columns["label"] == probabilities.argmax(-1).tolist()
    assert columns["label_name"] == [["neg", "neutral", "pos"][i] for i in probabilities.argmax(-1)]


def test_embeddings_match_the_backbone(served):
    m = served["models"]
    features = m["pre"](tf.constant(SENTENCES))
    outputs = m["classifier"].backbone(features)
    reply = served["replies"]["vectors"]["outputs"]
    np.testing.assert_allclose(np.array(reply["pooled_output"]), outputs["pooled_output"].numpy(), atol=ATOL, rtol=0)
    mean = masked_mean(outputs["sequence_output"], features["padding_mask"]).numpy()
    np.testing.assert_allclose(np.array(reply["mean_pooled_output"]), mean, atol=ATOL, rtol=0)
    assert np.array(reply["mean_pooled_output"]).shape == (len(SENTENCES), 32)


def test_tagger_words_and_tags_match_training_time_encoding(served):
    m = served["models"]
    reply = served["replies"]["ner"]["predictions"]
    words = [r["words"][: r["num_words"]] for r in reply]
    # BERT's basic split: runs of word characters, each punctuation mark alone; NBSP is a space.
    assert words == [re.findall(r"\w+|[^\w\s]", s) for s in TAG_SENTENCES]
    encoded = encode_tagged_sentences([TaggedSentence(w, ["O"] * len(w), 1) for w in words], m["pre"], TAGS)
    logits = [m["tagger"](x).numpy() for x, _ in tagging_dataset(encoded, 8, training=False)][0]
    probabilities = tf.nn.softmax(logits).numpy()
    for row, starts, r in zip(probabilities, encoded.word_starts, reply):
        kept = len(starts)
        expected = [TAGS[i] for i in row[starts].argmax(-1)] + ["O"] * (r["num_words"] - kept)
        assert r["tags"][: r["num_words"]] == expected
        np.testing.assert_allclose(r["scores"][:kept], row[starts].max(-1), atol=ATOL, rtol=0)
        assert r["scores"][kept:] == [0.0] * (len(r["scores"]) - kept)
        assert r["tags"][r["num_words"]:] == [""] * (len(r["tags"]) - r["num_words"])
    assert reply[2]["num_words"] == 20 and reply[2]["tags"][14:] == ["O"] * 6  # 14 words fit in 16 tokens


def test_span_qa_matches_squad_decoding(served):
    m, replies = served["models"], served["replies"]
    rows = replies["qa_rows"]["predictions"]
    columns = replies["qa_columns"]["outputs"]
    assert [r["answer"] for r in rows] == columns["answer"]
    examples = [SquadExample(str(i), q, c, ["x"], [0]) for i, (q, c) in enumerate(QA)]
    # One window of 32 tokens, as the serving graph: the stride is longer than any context here.
    features = squad_features(examples, m["qa_pre"].tokenizer, max_seq_length=32, doc_stride=1000,
                              max_query_length=6)
    first = [int(np.flatnonzero(features.example_index == i)[0]) for i in range(len(examples))]
    starts, ends = [], []
    for inputs in squad_dataset(features, 16, training=False, with_labels=False):
        outputs = m["qa"](inputs)
        starts.extend(outputs["start_logits"].numpy())
        ends.extend(outputs["end_logits"].numpy())
    keep = [w for w in range(len(features)) if w in first]
    features.max_context = [np.where(features.char_starts[w] >= 0, True, False) for w in range(len(features))]
    for w in keep:
        features_one = _select(features, [w])
        _, n_best = decode_answers([examples[features.example_index[w]]], features_one,
                                   [starts[w]], [ends[w]], max_answer_length=4, n_best_size=1)
        best = next(iter(n_best.values()))
        r = rows[features.example_index[w]]
        if not best:
            assert r["answer"] == "" and r["answer_start"] == -1 and r["score"] == -float("inf")
            continue
        assert r["answer"] == best[0]["text"] == QA[features.example_index[w]][1][r["answer_start"]:r["answer_end"]]
        assert (r["answer_start"], r["answer_end"]) == (best[0]["char_start"], best[0]["char_end"])
        assert abs(r["score"] - best[0]["score"]) <= ATOL
    assert len(features) > len(examples)  # the long context needed several windows; serving kept the first


def _select(features, windows):
    """The features of some windows, their questions renumbered from 0."""

    def pick(xs):
        return [xs[w] for w in windows]

    return dataclasses.replace(
        features, token_ids=pick(features.token_ids), segment_ids=pick(features.segment_ids),
        start_positions=features.start_positions[windows], end_positions=features.end_positions[windows],
        example_index=np.zeros(len(windows), np.int32), char_starts=pick(features.char_starts),
        char_ends=pick(features.char_ends), max_context=pick(features.max_context))


def test_gpt_matches_generate(served):
    lm, replies = served["models"]["lm"], served["replies"]
    expected = lm.generate(["abc", "h", "fgh a"], max_new_tokens=6, temperature=0, jit_compile=False)
    assert replies["gpt"]["outputs"] == expected
    # Greedy and char-level: 3 new tokens are the first 3 characters of 6.
    assert replies["gpt_options"]["outputs"] == [text[:3] for text in expected]


def test_gpt_bfloat16_export_matches_bfloat16_generate(served):
    half = cast_weights(served["models"]["lm"], "bfloat16")
    expected = half.generate(["abc", "h", "fgh a"], max_new_tokens=6, temperature=0)  # no XLA, as the export
    assert served["replies"]["gpt_bf16"]["outputs"] == expected


@pytest.mark.parametrize("request_name,message", [
    ("bad_dtype", "JSON value 1 is not of the expected type string"),
    ("bad_rank", "input `text` must be a 1-D batch of strings"),
    ("bad_scalar", "input `text` must be a 1-D batch of strings"),
    ("missing_input", "instance 0: missing named input `context`"),
    ("missing_columnar", "missing: ['context']"),
    ("batch_mismatch", "`question` and `context` must have the same batch size"),
    ("bad_signature", 'signature name: "nope" not found'),
    ("not_utf8", "input `text` must be UTF-8 text; rows with invalid bytes:] [0 2]"),
    ("too_many_tokens", "exceeds the exported maximum 6"),
])
def test_bad_requests_get_a_clear_error(served, request_name, message):
    reply = served["replies"][request_name]
    assert set(reply) == {"error"} and message in reply["error"], reply


def test_export_errors_name_the_problem(tmp_path):

    run = tmp_path / "run"
    save_config(BertTokenClassifier(bert(), 2), run, preprocessor(8), labels=["O", "B-X"])
    assert json.loads((run / "config.json").read_text())["labels"] == ["O", "B-X"]
    cases = [
        (dict(folder=run, head="span_qa"), ConfigError,
         "it holds a BertTokenClassifier (exports for it: tagger, embeddings)"),
        (dict(folder=run), CheckpointError,
         "no weights yet (neither model.weights.h5 nor a checkpoint in checkpoints/)"),
        (dict(folder=run, checkpoint=f"{run}/nope"), CheckpointError, "no such checkpoint"),
        (dict(folder=tmp_path, head="classifier"), FileNotFoundError, "no pretrained model found"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            export.export_folder(export_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_export_tool_reports_bad_input_in_one_line(tmp_path):
    """tools/export.py: tfllm's own errors print one `error:` line and exit 2, no traceback."""
    run = tmp_path / "run"
    save_config(BertTokenClassifier(bert(), 2), run, preprocessor(8), labels=["O", "B-X"])
    proc = run_script("tools/export.py", run, tmp_path / "out", "--head=span_qa", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "it holds a BertTokenClassifier" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_models_config_example_parses_as_a_model_server_config():
    from tensorflow_serving.config import model_server_config_pb2  # noqa: PLC0415  (the `serving` extra: only this test needs it)

    config = text_format.Parse((ROOT / "examples" / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    names = [c.name for c in config.model_config_list.config]
    assert names == ["sst2", "sst2_vectors", "ner", "qa", "gpt"]
    assert all(c.base_path == f"/models/{c.name}" and c.model_platform == "tensorflow"
               for c in config.model_config_list.config)


def test_query_tool_refuses_an_export_that_is_not_a_single_text_classifier(served):
    """tools/query_savedmodel.py prints labels of a classifier export; the tagger's is named in one line."""
    tagger = served["paths"]["tagger"]
    proc = run_script("tools/query_savedmodel.py", tagger, "EU rejects German call", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert errors[0].startswith(f"error: {tagger}: not a single-text classifier export"), errors
