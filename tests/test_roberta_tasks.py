"""RoBERTa (byte-level BPE) for NER and span QA: encodings against Hugging Face's RoBERTa tokenizer, and
recipes/tag.py and recipes/qa.py from a RoBERTa folder, whose exports serve raw text as Keras computes it.

The tokenizer is test_encoder_families.py's (a 500-token byte-level BPE trained on SST-2 and MRPC
sentences, saved by transformers), so CoNLL and SQuAD text splits into many small pieces, and every
non-ASCII character into byte tokens: the offsets are exercised hard. No downloads.
"""

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("transformers")

import tensorflow as tf
import transformers as T

from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tests.test_encoder_families import DATA
from tests.test_encoder_families import write_hf_model
from tests.test_encoder_families import write_roberta_tokenizer
from tests.test_span_qa import write_toy_squad
from tests.test_token_classification import write_toy_conll
from tfllm.data.conll import TaggedSentence
from tfllm.data.conll import read_conll
from tfllm.data.conll import to_bio
from tfllm.data.span_decoding import decode_answers
from tfllm.data.squad import SquadExample
from tfllm.data.squad import read_squad
from tfllm.data.squad import squad_dataset
from tfllm.data.squad import squad_features
from tfllm.data.token_classification import encode_tagged_sentences
from tfllm.data.token_classification import tagging_dataset
from tfllm.models import RobertaPreprocessor
from tfllm.models import load as load_folder
from tfllm.models.bert.preprocessors import preprocessor_from_pretrained
from tfllm.tokenizers import load_tokenizer
from tfllm.tokenizers.byte_pair_offsets import BytePairOffsets

ATOL = 1e-5


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_roberta_tokenizer(tmp_path_factory)


@pytest.fixture(scope="module")
def roberta_dir(tokenizer_dir, tmp_path_factory):
    """A tiny random RoBERTa (RobertaModel) folder with its tokenizer, as transformers saves it."""
    return write_hf_model("RobertaModel", tokenizer_dir, tmp_path_factory.mktemp("roberta"))


@pytest.fixture(scope="module")
def squad_dev():
    path = DATA / "squad/dev-v1.1.json"
    if not path.exists():
        pytest.skip("shared SQuAD dev data not found")
    return read_squad(path)


# ---- NER: words -> pieces, the label on each word's first piece ------------------------


def test_ner_encoding_equals_hf_words_with_prefix_space(tokenizer_dir):
    path = DATA / "conll2003/valid.txt"
    if not path.exists():
        pytest.skip("shared CoNLL-2003 data not found")
    sentences = to_bio(read_conll(path))[0][:300]
    labels = sorted({t for s in sentences for t in s.tags})
    pre = preprocessor_from_pretrained(tokenizer_dir, sequence_length=48)
    encoded = encode_tagged_sentences(sentences, pre, labels)
    ref = T.AutoTokenizer.from_pretrained(tokenizer_dir, add_prefix_space=True)
    cut = 0
    for i, sentence in enumerate(sentences):
        # HF cuts tokens at max_length; tfllm keeps the words whose first piece fits, cut the same way.
        want = ref(sentence.words, is_split_into_words=True, truncation=True, max_length=48)
        word_ids = want.word_ids()
        first = [k for k, w in enumerate(word_ids) if w is not None and (k == 0 or word_ids[k - 1] != w)]
        assert encoded.token_ids[i].numpy().tolist() == want["input_ids"], sentence.words
        assert encoded.word_starts[i].tolist() == first
        weights = np.zeros(len(word_ids))
        weights[first] = 1
        assert encoded.label_weights[i].numpy().tolist() == weights.tolist()
        assert [labels[k] for k in encoded.labels[i].numpy()[first]] == sentence.tags[: len(first)]
        cut += len(first) < len(sentence.words)
    assert 0 < cut < len(sentences) and want["input_ids"][0] == pre.cls_token_id == 0  # <s>


# ---- Span QA: character offsets, windows, answer spans ---------------------------------


def hf_answer_span(offsets, sequence_ids, start_char, end_char):
    """The token span of an answer as transformers' run_qa.py finds it; (0, 0) when not in the window."""
    context = [k for k, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def test_offsets_and_windows_equal_hf_on_squad_contexts(tokenizer_dir, squad_dev):
    # Every question of 40 contexts with non-ASCII characters (accents, dashes, CJK, ...) and of 40 without.
    contexts = list(dict.fromkeys(e.context for e in squad_dev))
    chosen = set([c for c in contexts if not c.isascii()][:40] + [c for c in contexts if c.isascii()][:40])
    examples = [e for e in squad_dev if e.context in chosen]
    ref = T.AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = sorted(chosen) + ["Beyoncé's  日本語 café,\tnaïve—x\n y <s> end  ", "", "  two leading"]
    ids, starts, ends, mismatched = BytePairOffsets(load_tokenizer(tokenizer_dir))(texts)
    assert mismatched == 0
    for text, i, s, e in zip(texts, ids, starts, ends):
        want = ref(text, add_special_tokens=False, return_offsets_mapping=True)
        assert i.tolist() == want["input_ids"]
        assert list(zip(s.tolist(), e.tolist())) == [tuple(o) for o in want["offset_mapping"]], text

    # Questions are not cut (transformers' only_second truncation keeps them whole).
    pre = preprocessor_from_pretrained(tokenizer_dir, sequence_length=200)
    features = squad_features(examples, pre, max_seq_length=200, doc_stride=48, max_query_length=150)
    assert features.stats["truncated_questions"] == 0 and features.stats["multi_window_questions"] > 0
    first_window = {int(q): w for w, q in reversed(list(enumerate(features.example_index)))}
    aligned = answers = whole_characters = 0
    for q, example in enumerate(examples):
        w = first_window[q]
        # The first window: <s> question </s></s> context </s>, as transformers packs and cuts a pair.
        want = ref(example.question, example.context, truncation="only_second", max_length=200,
                   return_offsets_mapping=True)
        assert features.token_ids[w].tolist() == want["input_ids"]
        assert not features.segment_ids[w].any()
        in_context = np.array([s == 1 for s in want.sequence_ids()])
        offsets = np.array(want["offset_mapping"])
        np.testing.assert_array_equal(features.char_starts[w][in_context], offsets[in_context, 0])
        np.testing.assert_array_equal(features.char_ends[w][in_context], offsets[in_context, 1])
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])
        ours = features.start_positions[w], features.end_positions[w]
        theirs = hf_answer_span(want["offset_mapping"], want.sequence_ids(), answer_start, answer_end)
        # run_qa.py ends an answer ending in "é" (two byte tokens, each covering "é") at the first of them;
        # tfllm takes the whole character. Either way the span covers the same characters.
        assert ours == theirs or [tuple(offsets[k]) for k in ours] == [tuple(offsets[k]) for k in theirs]
        whole_characters += ours != theirs
        # Gold spans back to text: the gold answer whenever it begins and ends on token boundaries.
        span = features.start_positions[w], features.end_positions[w]
        if span[0]:
            text = example.context[features.char_starts[w][span[0]]:features.char_ends[w][span[1]]]
            on_boundaries = answer_start in features.char_starts[w] and answer_end in features.char_ends[w]
            assert text == example.answers[0] if on_boundaries else example.answers[0] in text
            aligned += on_boundaries
            answers += 1
    assert aligned > 0.9 * answers > 0 and whole_characters > 0


# ---- recipes/tag.py and recipes/qa.py from a RoBERTa folder, and their exports ----------


def test_tag_recipe_from_roberta_exports_a_tagger_equal_to_keras(roberta_dir, tmp_path):
    write_toy_conll(tmp_path / "train.txt", 32, seed=0)
    proc = run_script(
        "recipes/tag.py", f"--train_file={tmp_path / 'train.txt'}", f"--init_checkpoint={roberta_dir}",
        f"--model_dir={tmp_path / 'model'}", f"--export_dir={tmp_path / 'export'}", "--model_name=ner",
        "--max_seq_length=16", "--batch_size=16", "--epochs=1", "--learning_rate=1e-3", "--strategy=cpu",
        "--log_every=1")
    assert "step 2/2" in proc.stderr
    sentences = ["Anna Smith visited Paris on Monday.", "Zürich, Lima and Cairo: Boris met Elena in Oslo on Monday "
                 "and the report said so.", "Dmitri"]
    served = serve_in_fresh_process(tmp_path / "export/ner/1", {"text": sentences})
    saved = load_folder(tmp_path / "model")
    pre, labels = saved.preprocessor(), saved.labels
    assert isinstance(pre, RobertaPreprocessor) and pre.sequence_length == 16
    words = [w[:n] for w, n in zip(served["words"], served["num_words"])]
    assert words[0] == ["Anna", "Smith", "visited", "Paris", "on", "Monday", "."]
    encoded = encode_tagged_sentences([TaggedSentence(w, ["O"] * len(w), 1) for w in words], pre, labels)
    [(features, _)] = list(tagging_dataset(encoded, 8, training=False))
    probabilities = tf.nn.softmax(saved.model(features, training=False)).numpy()
    for row, starts, tags, scores, n in zip(probabilities, encoded.word_starts, served["tags"], served["scores"],
                                            served["num_words"]):
        kept = len(starts)
        assert tags[:n] == [labels[i] for i in row[starts].argmax(-1)] + ["O"] * (n - kept)
        np.testing.assert_allclose(scores[:kept], row[starts].max(-1), atol=ATOL, rtol=0)
    assert encoded.num_truncated_words > 0  # the long sentence was cut at 16 tokens, as in serving


def test_qa_recipe_from_roberta_exports_a_reader_equal_to_keras(roberta_dir, tmp_path):
    write_toy_squad(tmp_path / "toy.json", 64, seed=0)
    proc = run_script(
        "recipes/qa.py", f"--train_file={tmp_path / 'toy.json'}", "--train_articles=0:2",
        f"--init_checkpoint={roberta_dir}", f"--model_dir={tmp_path / 'model'}", f"--export_dir={tmp_path / 'export'}",
        "--max_seq_length=48", "--doc_stride=16", "--max_query_length=8", "--max_answer_length=6",
        "--batch_size=16", "--epochs=1", "--learning_rate=1e-3", "--strategy=cpu", "--log_every=1")
    assert "exported:" in proc.stdout
    toy = [SquadExample(str(i), q, c, ["x"], [0]) for i, (q, c) in enumerate([
        ("What is the answer?", "Near the river, the answer is café. Old people walked in Zürich."),
        ("What is the answer?", "The answer is green, not blue; the park was big."),
        ("Who walked?", "On Sunday morning — the old people — walked near the house in Zürich, said the "
                        "report, and then the answer is purple and nothing else could be a longer story here."),
    ])]
    served = serve_in_fresh_process(tmp_path / "export/span_qa/1", {
        "question": [e.question for e in toy], "context": [e.context for e in toy]})
    saved = load_folder(tmp_path / "model")
    pre = saved.preprocessor()
    assert isinstance(pre, RobertaPreprocessor)
    # Serving keeps the first window of each question: a stride longer than any context gives just that.
    features = squad_features(toy, pre, max_seq_length=48, doc_stride=1000, max_query_length=8)
    first = [int(np.flatnonzero(features.example_index == i)[0]) for i in range(len(toy))]
    starts, ends = [], []
    for inputs in squad_dataset(features, 16, training=False, with_labels=False):
        outputs = saved.model(inputs, training=False)
        starts.extend(outputs["start_logits"].numpy())
        ends.extend(outputs["end_logits"].numpy())
    assert len(features) > len(toy)  # the long context needed a second window, which serving does not see
    for i, w in enumerate(first):
        features.max_context[w] = features.char_starts[w] >= 0
        one = dataclasses.replace(
            features, **{k: [getattr(features, k)[w]] for k in ("token_ids", "segment_ids", "char_starts",
                                                                 "char_ends", "max_context")},
            start_positions=features.start_positions[[w]], end_positions=features.end_positions[[w]],
            example_index=np.zeros(1, np.int32))
        _, n_best = decode_answers([toy[i]], one, [starts[w]], [ends[w]], max_answer_length=6, n_best_size=1)
        best = n_best[toy[i].id][0]
        assert served["answer"][i] == best["text"] == toy[i].context[served["answer_start"][i]:served["answer_end"][i]]
        assert (served["answer_start"][i], served["answer_end"][i]) == (best["char_start"], best["char_end"])
        assert abs(served["score"][i] - best["score"]) <= ATOL
    assert json.loads((tmp_path / "model" / "config.json").read_text())["serving"]["max_answer_length"] == 6
