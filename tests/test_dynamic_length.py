"""Dynamic-length serving: each batch padded to its longest row (rounded up to 8), not to the sequence length.

The same requests go through a dynamic-length export (classifier, sentence-pair
classifier, embeddings), served in one fresh process with only TensorFlow and
tensorflow_text, and through the fixed-length serving graph of the same model
in this process: the outputs must agree within 1e-5. The helper that trims the packed inputs is checked on the
preprocessor's real output (widths, and positions and segments unchanged).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.fresh_process import serve_calls_in_fresh_process
from tfllm import export
from tfllm.export.classifier_export import ClassifierServingModule
from tfllm.export.embeddings_export import EmbeddingsServingModule
from tfllm.export.serving_layout import padded_length
from tfllm.export.serving_layout import trim_padding
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models.bert.bert_preprocessor import BertPreprocessor

WORDS = "the a of in is was film movie good bad paris france tower where who what when built".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", ".", ",", "!"]
SEQUENCE_LENGTH = 48
ATOL = 1e-5


def sentence(n):
    """`n` words (one token each)."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


# Batches whose longest row packs to 2 (empty), 14, 15, 16 and 17 tokens ([CLS] ... [SEP]), 30, and past the
# sequence length (truncated): widths 8, 16, 16, 16, 24, 32, 48.
BATCHES = [[""], [sentence(12)], [sentence(13), "bad"], [sentence(14), "", sentence(3)], [sentence(15)],
           [sentence(28), sentence(1), sentence(9)], [sentence(80), "good film !"]]
PAIRS = [(["good"], ["bad film"]), ([sentence(10), "a"], [sentence(4), sentence(20)]),
         ([sentence(40)], [sentence(30)]), ([""], [""])]


def preprocessor():
    return BertPreprocessor(VOCAB, sequence_length=SEQUENCE_LENGTH, lowercase=True)


def test_padded_length_rounds_up_to_8_and_caps():
    lengths = {(2,): 8, (8,): 8, (9,): 16, (17,): 24, (5, 31, 3): 32, (41,): 48, (48,): 48, (200,): 48, (): 8}
    for rows, expected in lengths.items():
        assert int(padded_length(tf.constant(rows, tf.int32), SEQUENCE_LENGTH)) == expected, rows
    assert int(padded_length(tf.constant([17], tf.int64), 128, multiple=16)) == 32


def test_trim_padding_keeps_every_real_token_with_its_position_and_segment():
    pre = preprocessor()
    for texts in ([sentence(3), sentence(20)], (["good film", sentence(12)], [sentence(5), "bad"])):
        full = pre(tuple(tf.constant(t) for t in texts) if isinstance(texts, tuple) else tf.constant(texts))
        trimmed = trim_padding(full)
        real = full["padding_mask"].numpy().sum(axis=1)
        width = trimmed["token_ids"].shape[1]
        assert width == -(-real.max() // 8) * 8 and width < SEQUENCE_LENGTH
        for name in ("token_ids", "segment_ids", "padding_mask"):
            # The same leading columns (so position i is still position i), and only padding was cut.
            np.testing.assert_array_equal(trimmed[name].numpy(), full[name].numpy()[:, :width])
            assert not full["padding_mask"].numpy()[:, width:].any()
    pair = trim_padding(pre((tf.constant(["good film"]), tf.constant(["bad"]))))
    assert pair["segment_ids"].numpy()[0, :6].tolist() == [0, 0, 0, 0, 1, 1]


def _fixed_length(module, inputs):
    """The fixed-length serving graph's outputs, called in this process (that graph's own export is
    checked against Keras in test_export.py): the reference for the dynamic-length export."""
    outputs = module.serve(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: [s.decode() for s in v.numpy()] if v.dtype == tf.string else v.numpy().tolist()
            for k, v in outputs.items()}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Dynamic-length exports of each head, every request answered in ONE fresh process, and the same
    requests through the fixed-length serving modules in this process."""
    tmp = tmp_path_factory.mktemp("dynamic")
    keras.utils.set_random_seed(0)
    bert = Bert.from_preset("bert_nano", vocabulary_size=len(VOCAB), dropout=0.0)
    classifier = BertClassifier(bert, 3, dropout=0.0)
    mean_classifier = BertClassifier(bert, 2, pooling="mean", dropout=0.0)
    single = export.export_classifier(preprocessor(), classifier, tmp, "clf", token_ids_signatures=True)
    pair = export.export_classifier(preprocessor(), mean_classifier, tmp, "pair", text_pair=True)
    vectors = export.export_embeddings(preprocessor(), bert, tmp, "vectors")
    calls = [(single, "serving_default", {"text": b}) for b in BATCHES]
    calls += [(pair, "serving_default", {"text": a, "text_pair": b}) for a, b in PAIRS]
    calls += [(vectors, "serving_default", {"text": b}) for b in BATCHES]
    fixed_modules = {single: ClassifierServingModule(preprocessor(), classifier, dynamic_length=False),
                     pair: ClassifierServingModule(preprocessor(), mean_classifier, text_pair=True,
                                                   dynamic_length=False),
                     vectors: EmbeddingsServingModule(preprocessor(), bert, dynamic_length=False)}
    fixed = [_fixed_length(fixed_modules[path], inputs) for path, _, inputs in calls]
    tokenized = preprocessor()(tf.constant(BATCHES[5]))
    token_ids_call = {k: v.numpy().tolist() for k, v in tokenized.items()}
    calls.append((single, "classify_token_ids", token_ids_call))
    replies = serve_calls_in_fresh_process(calls)
    return dict(fixed=fixed, dynamic=replies[:-1], token_ids=replies[-1], classifier=classifier,
                tokenized=tokenized)


def test_dynamic_length_outputs_match_the_fixed_length_export(served):
    assert len(served["fixed"]) == len(served["dynamic"]) == 2 * len(BATCHES) + len(PAIRS)
    for fixed, dynamic in zip(served["fixed"], served["dynamic"]):
        assert "error" not in fixed and "error" not in dynamic, (fixed, dynamic)
        assert set(fixed) == set(dynamic)
        for name, value in fixed.items():
            if name in ("label", "label_name"):
                assert dynamic[name] == value
            else:
                np.testing.assert_allclose(np.array(dynamic[name]), np.array(value), atol=ATOL, rtol=0)


def test_dynamic_length_matches_keras_and_token_ids_signature(served):
    expected = tf.nn.softmax(served["classifier"](served["tokenized"])).numpy()
    np.testing.assert_allclose(np.array(served["dynamic"][5]["probabilities"]), expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.array(served["token_ids"]["probabilities"]), expected, atol=ATOL, rtol=0)
