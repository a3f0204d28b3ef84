"""Extractive QA (SQuAD v1.1): offsets, windows, decoding, official metric, span model, recipes/qa.py end to end."""

import collections
import json
import logging
import re
import string
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference as ref
from tests.run_script import run_script
from tfllm.data.errors import DataError
from tfllm.data.span_decoding import decode_answers
from tfllm.data.span_decoding import window_spans
from tfllm.data.squad import SquadExample
from tfllm.data.squad import answer_token_span
from tfllm.data.squad import parse_article_range
from tfllm.data.squad import read_squad
from tfllm.data.squad import squad_dataset
from tfllm.data.squad import squad_features
from tfllm.metrics import squad as squad_metric
from tfllm.models import Bert
from tfllm.models import BertSpanQA
from tfllm.models import load
from tfllm.models.bert.bert_span_qa import PADDING_LOGIT
from tfllm.tokenizers import RESERVED_TOKENS
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers.word_piece_offsets import WordPieceOffsets
from tfllm.training.span_losses import span_loss

ROOT = Path(__file__).resolve().parents[1]

VOCAB = [*RESERVED_TOKENS, "the", "cafe", "un", "##believ", "##able", ",", ".", "1990", "##s", "is", "in",
         "paris", "'", "s", "zurich", "(", ")", "naive", "what", "answer", "?", "q",
         *[f"a{i}" for i in range(40)]]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCAB)


# ---- Character offsets and answer spans ----------------------------------------


OFFSET_CASES = [
    # text, the text each token covers
    ("The café's unbelievable!", ["The", "café", "'", "s", "un", "believ", "able", "!"]),
    ("In  Zürich (1990s)—naïve.", ["In", "Zürich", "(", "1990", "s", ")", "—", "naïve", "."]),
    # Decomposed accent (deleted by the normalizer) stays with its word; NBSP and a
    # zero-width space (deleted) inside a word.
    ("Cafe\u0301 in\u00a0Paris, un\u200bbelievable", ["Cafe\u0301", "in", "Paris", ",", "un\u200b", "believ", "able"]),
    ("", []),
]


def test_offsets_give_the_tokenizer_ids_and_the_covered_text(tokenizer):
    texts = [text for text, _ in OFFSET_CASES]
    ids, starts, ends, mismatched = WordPieceOffsets(tokenizer)(texts)
    assert mismatched == 0
    for text, expected, i, s, e, reference in zip(texts, [c for _, c in OFFSET_CASES], ids, starts, ends,
                                                  tokenizer(texts)):
        assert i.tolist() == list(reference), text  # the ids the model's tokenizer gives
        assert [text[a:b] for a, b in zip(s, e)] == expected, text
    # "—" is not in the vocabulary: [UNK] covering its word; "un\u200bbelievable" is one word, 3 pieces.
    assert ids[1][6] == VOCAB.index("[UNK]")
    assert ids[2][-3:].tolist() == [VOCAB.index("un"), VOCAB.index("##believ"), VOCAB.index("##able")]


def test_offsets_cased_tokenizer_keeps_accents():
    cased = WordPieceTokenizer(["[PAD]", "[UNK]", "Zür", "##ich", "Zurich"], lowercase=False)
    ids, starts, ends, _ = WordPieceOffsets(cased)(["Zürich Zurich"])
    assert ids[0].tolist() == [2, 3, 4]
    assert [("Zürich Zurich")[a:b] for a, b in zip(starts[0], ends[0])] == ["Zür", "ich", "Zurich"]


@pytest.mark.parametrize("answer,tokens", [
    ("Zürich", ["Zürich"]),
    ("1990", ["1990"]),          # a whole sub-word
    ("90s", ["1990", "s"]),      # inside sub-words: every overlapping token
    ("(1990s)", ["(", "1990", "s", ")"]),
    ("naïve.", ["naïve", "."]),
])
def test_answer_characters_map_to_the_overlapping_tokens(tokenizer, answer, tokens):
    text = OFFSET_CASES[1][0]
    _, starts, ends, _ = WordPieceOffsets(tokenizer)([text])
    start = text.index(answer)
    first, last = answer_token_span(starts[0], ends[0], start, start + len(answer))
    assert [text[a:b] for a, b in zip(starts[0][first : last + 1], ends[0][first : last + 1])] == tokens


def test_answer_of_deleted_characters_has_no_tokens():
    assert answer_token_span(np.array([0, 5]), np.array([3, 8]), 3, 5) is None


# ---- Windows ---------------------------------------------------------------------

CONTEXT = " ".join(f"a{i}" for i in range(40))  # 40 tokens


def example(question="q", answer="a13 a14", qid="x"):
    return SquadExample(qid, question, CONTEXT, [answer], [CONTEXT.index(answer)])


def test_long_context_is_split_by_stride_and_targets_the_answer_or_cls(tokenizer):
    # 16 tokens: [CLS] q [SEP] + 12 context tokens + [SEP]; windows start every 4 tokens.
    f = squad_features([example()], tokenizer, max_seq_length=16, doc_stride=4, max_query_length=4)
    window_starts = list(range(0, 29, 4))
    assert len(f) == len(window_starts) and f.stats["windows"] == len(window_starts)
    for w, start in enumerate(window_starts):
        tokens = [VOCAB[t] for t in f.token_ids[w]]
        assert tokens == ["[CLS]", "q", "[SEP]", *[f"a{i}" for i in range(start, start + 12)], "[SEP]"]
        assert f.segment_ids[w].tolist() == [0] * 3 + [1] * 13
        if start <= 13 and 14 < start + 12:  # both answer tokens inside
            assert (f.start_positions[w], f.end_positions[w]) == (13 - start + 3, 14 - start + 3)
            s, e = f.start_positions[w], f.end_positions[w]
            assert CONTEXT[f.char_starts[w][s] : f.char_ends[w][e]] == "a13 a14"
        else:
            assert (f.start_positions[w], f.end_positions[w]) == (0, 0)  # [CLS]
    assert f.stats["windows_without_answer"] == len(window_starts) - 3
    # Each context token is "max context" in exactly one window: a13 in the one starting at 8
    # (5 tokens left, 6 right).
    per_token = np.zeros(40, int)
    for w, start in enumerate(window_starts):
        per_token[start : start + 12] += f.max_context[w][3:15]
        assert not f.max_context[w][:3].any() and not f.max_context[w][15]
    assert (per_token == 1).all()
    assert f.max_context[window_starts.index(8)][3 + 13 - 8]


def test_answer_spanning_two_windows_only_partly_is_cls_in_both(tokenizer):
    f = squad_features([example(answer="a10 a11 a12 a13 a14 a15 a16 a17 a18 a19 a20")], tokenizer,
                       max_seq_length=16, doc_stride=8, max_query_length=4)
    assert (f.start_positions == 0).all() and (f.end_positions == 0).all()  # 11 tokens fit no 12-token window...
    f = squad_features([example(answer="a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 a18 a19")], tokenizer,
                       max_seq_length=16, doc_stride=8, max_query_length=4)
    assert f.start_positions.tolist()[:3] == [0, 3, 0]  # ... but exactly the second one


def test_question_truncation_is_counted_and_logged(tokenizer, caplog):
    long_question = "what is the answer in paris ?"  # 7 tokens
    with caplog.at_level(logging.INFO, logger="absl"):
        f = squad_features([example(), example(long_question, qid="y")], tokenizer, max_seq_length=24,
                           doc_stride=8, max_query_length=4, name="toy.json")
    assert f.stats["truncated_questions"] == 1
    tokens = [VOCAB[t] for t in f.token_ids[-1]]
    assert tokens[:6] == ["[CLS]", "what", "is", "the", "answer", "[SEP]"]
    assert "toy.json: 1 of 2 questions truncated to 4 tokens (--max_query_length)" in caplog.text


def test_window_flags_are_checked(tokenizer):
    with pytest.raises(ValueError, match="max_query_length=13"):
        squad_features([example()], tokenizer, max_seq_length=16, max_query_length=13)


def test_dataset_pads_batches_and_keeps_order(tokenizer):
    f = squad_features([example(), example("what is the answer ?", qid="y")], tokenizer, max_seq_length=20,
                       doc_stride=8, max_query_length=8)
    batches = list(squad_dataset(f, 4, training=False))
    inputs, labels = batches[0]
    assert inputs["token_ids"].shape[1] == max(len(t) for t in f.token_ids[:4])
    assert inputs["padding_mask"].numpy().sum() == sum(len(t) for t in f.token_ids[:4])
    assert labels["start_positions"].numpy().tolist() == f.start_positions[:4].tolist()
    x, y = next(iter(squad_dataset(f, 3, training=True, seed=0, max_seq_length=20)))
    assert x["token_ids"].shape[0] == 3


# ---- Reading SQuAD JSON ----------------------------------------------------------


def squad_json(qas, context="Paris is in France."):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}


GOOD_QA = {"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}


def test_read_squad_and_article_ranges(tmp_path):
    path = tmp_path / "s.json"
    data = squad_json([GOOD_QA])
    data["data"].append({"title": "U", "paragraphs": [{"context": "abc", "qas": [
        {"id": "q2", "question": "Which?",
         "answers": [{"text": "b", "answer_start": 1}, {"text": "bc", "answer_start": 1}]}]}]})
    path.write_text(json.dumps(data))
    assert [e.id for e in read_squad(path)] == ["q1", "q2"]
    (second,) = read_squad(path, parse_article_range("1:2"))
    assert (second.answers, second.answer_starts, second.title) == (["b", "bc"], [1, 1], "U")
    assert parse_article_range("0:38") == slice(0, 38) and parse_article_range(":") == slice(None)
    with pytest.raises(ValueError, match="--eval_articles='38-48'"):
        parse_article_range("38-48", "--eval_articles")
    with pytest.raises(DataError, match="selects none of its 2 articles"):
        read_squad(path, slice(5, 9))


@pytest.mark.parametrize("qa,expected", [
    (dict(GOOD_QA, answers=[]), "question q1: no 'answers'"),
    (dict(GOOD_QA, answers=[{"text": "France", "answer_start": 15}]), "question q1: answer 0: answer_start=15"),
    (dict(GOOD_QA, answers=[{"text": "Franc", "answer_start": 11}]), "question q1: answer 0: text 'Franc' is not"),
    (dict(GOOD_QA, question=""), "question q1: missing or empty 'question'"),
    ({"question": "Where?"}, "paragraph 0 question 0: expected an object with an 'id'"),
])
def test_malformed_entries_name_file_and_question(tmp_path, qa, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(squad_json([qa])))
    with pytest.raises(DataError) as error:
        read_squad(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_bad_json_and_duplicates_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [')
    with pytest.raises(DataError, match=f"{re.escape(str(path))}: not valid JSON"):
        read_squad(path)
    path.write_text(json.dumps(squad_json([GOOD_QA, GOOD_QA])))
    with pytest.raises(DataError, match="question q1: duplicate question id"):
        read_squad(path)


# ---- Official SQuAD v1.1 metric ----------------------------------------------------
# The official evaluate-v1.1.py functions, verbatim, as the reference.


def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def official_exact_match_score(prediction, ground_truth):
    return (official_normalize_answer(prediction) == official_normalize_answer(ground_truth))


METRIC_CASES = [
    # prediction, ground truth, exact match, F1 (by hand from the definitions)
    ("The Cat!", "cat", 1.0, 1.0),
    ("the cat sat", "a cat sat on the mat", 0.0, 2 / 3),   # P = 2/2, R = 2/4
    ("An  apple,\tthe pie.", "apple pie", 1.0, 1.0),
    ("theater", "the ater", 0.0, 0.0),                     # articles only as whole words
    ("1990s", "1990", 0.0, 0.0),
    ("U.S.", "US", 1.0, 1.0),                              # ASCII punctuation removed, no space
    ("café’s", "café's", 0.0, 0.0),                        # ’ is not ASCII punctuation
    ("the", "a", 1.0, 0.0),                                # both normalize to "" -> EM 1, F1 0
    ("red red blue", "red blue blue", 0.0, 2 / 3),         # bag of words: common = red, blue
]


@pytest.mark.parametrize("prediction,truth,em,f1", METRIC_CASES)
def test_squad_metric_known_cases(prediction, truth, em, f1):
    assert squad_metric.exact_match(prediction, truth) == em == float(official_exact_match_score(prediction, truth))
    assert squad_metric.f1(prediction, truth) == pytest.approx(f1)
    assert squad_metric.f1(prediction, truth) == pytest.approx(official_f1_score(prediction, truth))


def test_squad_metric_matches_official_normalization_on_random_strings():
    rng = np.random.default_rng(0)
    alphabet = list("abthe nAT.,!?'-\"()$%é’ \t") + ["the", "an", "a", "The", " a ", "An"]
    for _ in range(500):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(0, 15))))
        t = "".join(rng.choice(alphabet, size=int(rng.integers(0, 15))))
        assert squad_metric.normalize_answer(s) == official_normalize_answer(s)
        assert squad_metric.f1(s, t) == pytest.approx(official_f1_score(s, t))


def test_squad_scores_take_the_best_gold_answer_and_count_unanswered():
    gold = {"a": ["Paris", "the city of Paris"], "b": ["blue"], "c": ["x y"], "d": ["z"]}
    predictions = {"a": "city of Paris", "b": "Blue.", "c": "x"}
    scores = squad_metric.squad_scores(gold, predictions)
    assert scores["questions"] == 4 and scores["unanswered"] == 1
    assert scores["exact_match"] == pytest.approx(100 * (1 + 1 + 0 + 0) / 4)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 0) / 4)


# ---- Decoding ----------------------------------------------------------------------


def brute_force_spans(start_logits, end_logits, start_ok, end_ok, max_answer_length):
    spans = [(start_logits[s] + end_logits[e], s, e)
             for s in range(len(start_logits)) for e in range(len(end_logits))
             if start_ok[s] and end_ok[e] and s <= e < s + max_answer_length]
    return sorted(spans, key=lambda x: (-x[0], x[1], x[2]))


@pytest.mark.parametrize("seed", range(5))
def test_window_n_best_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 25
    start, end = rng.normal(size=n), rng.normal(size=n)
    end_ok = rng.random(n) < 0.7
    start_ok = end_ok & (rng.random(n) < 0.8)
    for max_len, n_best in [(1, 5), (4, 20), (30, 7), (3, 1000)]:
        got = window_spans(start, end, start_ok, end_ok, max_len, n_best)
        expected = brute_force_spans(start, end, start_ok, end_ok, max_len)[:n_best]
        assert [(s, e) for _, s, e in got] == [(s, e) for _, s, e in expected]
        np.testing.assert_allclose([x for x, _, _ in got], [x for x, _, _ in expected])
    assert window_spans(start, end, np.zeros(n, bool), end_ok, 4, 5) == []


def test_decoding_is_best_over_windows_context_only_and_maps_back_to_text(tokenizer):
    examples = [example(qid="x"), example("what is the answer ?", qid="y")]
    f = squad_features(examples, tokenizer, max_seq_length=16, doc_stride=4, max_query_length=8)
    rng = np.random.default_rng(3)
    width = max(len(t) for t in f.token_ids) + 3  # rows padded as a batch would be
    starts, ends = rng.normal(size=(len(f), width)), rng.normal(size=(len(f), width))
    starts[:, 0] = ends[:, 0] = 50.0  # [CLS]: never an answer at decoding
    starts[:, 1] = ends[:, 2] = 40.0  # question tokens
    starts[:, -1] = ends[:, -1] = 60.0  # padding beyond the window
    predictions, n_best = decode_answers(examples, f, list(starts), list(ends), max_answer_length=5, n_best_size=4)

    for i, ex in enumerate(examples):
        best = None
        for w in np.flatnonzero(f.example_index == i):
            n = len(f.token_ids[w])
            context = f.char_starts[w] >= 0
            for s, e in [(s, e) for _, s, e in brute_force_spans(
                    starts[w][:n], ends[w][:n], context & f.max_context[w], context, 5)]:
                score = starts[w][s] + ends[w][e]
                if best is None or score > best[0]:
                    best = (score, ex.context[f.char_starts[w][s] : f.char_ends[w][e]])
        assert predictions[ex.id] == best[1]
        assert n_best[ex.id][0]["text"] == best[1] and len(n_best[ex.id]) == 4
        assert len({c["text"] for c in n_best[ex.id]}) == 4  # distinct texts, best first
        assert [c["score"] for c in n_best[ex.id]] == sorted((c["score"] for c in n_best[ex.id]), reverse=True)
        assert len(best[1].split()) <= 5


def test_decoding_start_only_where_the_window_has_most_context(tokenizer):
    f = squad_features([example()], tokenizer, max_seq_length=16, doc_stride=4, max_query_length=4)
    starts = [np.zeros(16) for _ in range(len(f))]
    ends = [np.zeros(16) for _ in range(len(f))]
    # a13 gets a high start logit in every window; only the window starting at token 8 counts.
    for w in range(len(f)):
        window_start = 4 * w
        if window_start <= 13 < window_start + 12:
            starts[w][3 + 13 - window_start] = 5.0 if window_start != 8 else 1.0
            ends[w][3 + 14 - window_start] = 1.0
    starts[1][3 + 5] = 3.0  # a9: max context in the window starting at 4 (5 left, 6 right)
    ends[1][3 + 6] = 1.0
    predictions, _ = decode_answers([example()], f, starts, ends)
    assert predictions["x"] == "a9 a10"


# ---- Model and loss ----------------------------------------------------------------


def qa_inputs():
    ids = np.random.default_rng(0).integers(5, 1000, (2, 9)).astype("int32")
    mask = np.ones((2, 9), bool)
    mask[1, 6:] = False
    ids[~mask] = 0
    return {"token_ids": ids, "segment_ids": (np.arange(9) >= 4).astype("int32")[None].repeat(2, 0),
            "padding_mask": mask}


def test_span_model_shapes_padding_and_config_round_trip(tmp_path):
    model = BertSpanQA(Bert.from_preset("bert_nano"))
    x = qa_inputs()
    out = model(x)
    assert set(out) == {"start_logits", "end_logits"}
    for logits in out.values():
        assert logits.shape == (2, 9) and keras.backend.standardize_dtype(logits.dtype) == "float32"
        logits = logits.numpy()
        assert (logits[1, 6:] == PADDING_LOGIT).all() and (logits[0] != PADDING_LOGIT).all()
        assert (np.abs(logits[x["padding_mask"]]) < 100).all()
    again = BertSpanQA.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    path = str(tmp_path / "qa.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is BertSpanQA
    for name in out:
        np.testing.assert_array_equal(restored(x)[name].numpy(), out[name].numpy())


def test_span_model_logits_are_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = BertSpanQA(Bert.from_preset("bert_nano"))
        out = model(qa_inputs())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.backbone.compute_dtype == "bfloat16"
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())


def test_span_loss_is_the_mean_of_start_and_end_cross_entropy():
    rng = np.random.default_rng(0)
    outputs = {"start_logits": rng.normal(size=(3, 6)).astype("float32"),
               "end_logits": rng.normal(size=(3, 6)).astype("float32")}
    outputs["start_logits"][2, 4:] = PADDING_LOGIT  # padding takes no probability
    labels = {"start_positions": np.array([0, 2, 3]), "end_positions": np.array([0, 5, 3])}

    def cross_entropy(logits, target):
        logits = logits - logits.max(-1, keepdims=True)
        return -(logits[np.arange(3), target] - np.log(np.exp(logits).sum(-1)))

    expected = (cross_entropy(outputs["start_logits"], labels["start_positions"])
                + cross_entropy(outputs["end_logits"], labels["end_positions"])) / 2
    np.testing.assert_allclose(span_loss(labels, tf.nest.map_structure(tf.constant, outputs)).numpy(),
                               expected, rtol=1e-5)


# ---- recipes/qa.py end to end --------------------------------------------------------

FILLER = ["the", "river", "city", "old", "people", "walked", "near", "house", "was", "a", "big", "small",
          "is", "and", "of", "in", "park", "on", "sunday", "morning"]
ANSWERS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "café", "Zürich"]


def write_toy_squad(path, n, seed):
    """The answer is always the word after "the answer is"; other colours appear around it as distractors."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for i in range(n):
        answer = str(rng.choice(ANSWERS))
        before, after = (" ".join(rng.choice(FILLER + ANSWERS[:3], size=int(rng.integers(3, 25)))) for _ in "ab")
        prefix = f"{before.capitalize()}, the answer is "
        qas = [{"id": f"q{seed}-{i}", "question": "What is the answer?",
                "answers": [{"text": answer, "answer_start": len(prefix)},
                            {"text": f"is {answer}", "answer_start": len(prefix) - 3}]}]
        paragraphs.append({"context": f"{prefix}{answer}. {after.capitalize()}.", "qas": qas})
    articles = [{"title": f"t{j}", "paragraphs": paragraphs[j::4]} for j in range(4)]
    path.write_text(json.dumps({"version": "1.1", "data": articles}))


def run_recipe(tmp_path, *extra):
    return run_script(
        "recipes/qa.py", f"--train_file={tmp_path / 'toy.json'}", "--train_articles=0:3", "--eval_articles=3:4",
        "--preset=bert_nano", "--vocab_size=200", "--max_seq_length=32", "--doc_stride=12", "--max_query_length=8",
        "--batch_size=32", "--learning_rate=3e-3", "--dropout=0.0", "--strategy=cpu", "--log_every=100", *extra,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("qa")
    write_toy_squad(tmp_path / "toy.json", 580, seed=0)  # articles 0-3, 145 questions each
    return tmp_path, run_recipe(tmp_path, f"--model_dir={tmp_path / 'model'}", "--epochs=30")


def test_recipe_learns_the_toy_task(trained):
    tmp_path, proc = trained
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    predictions = json.loads((tmp_path / "model" / "predictions.json").read_text())
    assert results["questions"] == 145 == len(predictions)
    assert results["exact_match"] >= 90.0, results
    assert "eval: exact_match" in proc.stdout and "145 questions" in proc.stdout
    assert "questions span several windows" in proc.stderr  # contexts really were split
    # The window loss and accuracies are the final model's on the eval windows, recomputed with numpy.
    loaded = load(tmp_path / "model")
    features = squad_features(read_squad(tmp_path / "toy.json", slice(3, 4)), loaded.preprocessor(),
                              max_seq_length=32, doc_stride=12, max_query_length=8)
    losses, correct = [], {"start": [], "end": []}
    for inputs, labels in squad_dataset(features, 32, training=False):
        outputs = loaded.model(inputs, training=False)
        window_loss = 0.0
        for side in ("start", "end"):
            logits, target = outputs[f"{side}_logits"].numpy(), labels[f"{side}_positions"].numpy()
            window_loss = window_loss + ref.cross_entropy(logits, target) / 2
            correct[side].extend(logits.argmax(-1) == target)
        losses.extend(window_loss)
    assert results["windows"] == len(features) == len(losses)
    assert results["window_loss"] == pytest.approx(np.mean(losses), rel=1e-4)
    for side in ("start", "end"):
        assert results[f"window_{side}_accuracy"] == pytest.approx(np.mean(correct[side]), abs=1e-9)


def test_recipe_starts_from_a_tfllm_model_dir(trained):
    tmp_path, _ = trained
    # A run's checkpoints folder (a model_dir itself loads as a pretrained folder: test_pretrain_recipe.py).
    proc = run_recipe(tmp_path, f"--model_dir={tmp_path / 'again'}",
                      f"--init_checkpoint={tmp_path / 'model' / 'checkpoints'}",
                      f"--vocab_file={tmp_path / 'model' / 'vocab.txt'}", "--epochs=1")
    assert "Initialised the backbone from" in proc.stderr and "ckpt-" in proc.stderr
    assert (tmp_path / "again" / "predictions.json").exists()
