"""Token classification (NER): CoNLL reader, IOB1 -> BIO, WordPiece alignment, entity F1 (vs seqeval),
masked loss (vs numpy, also over 2 replicas), BertTokenClassifier, and recipes/tag.py end to end."""

import json
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference as ref
from tests.run_script import run_script
from tfllm.data import DataError
from tfllm.data.conll import TaggedSentence
from tfllm.data.conll import iob1_to_bio
from tfllm.data.conll import load_or_save_labels
from tfllm.data.conll import read_conll
from tfllm.data.conll import to_bio
from tfllm.data.token_classification import encode_tagged_sentences
from tfllm.data.token_classification import predict_word_tags
from tfllm.data.token_classification import tagging_dataset
from tfllm.metrics.entities import entity_scores
from tfllm.metrics.entities import entity_spans
from tfllm.models import Bert
from tfllm.models import BertTokenClassifier
from tfllm.models import load
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.training import tagging_losses

ROOT = Path(__file__).resolve().parents[1]
SHARED_CONLL = ROOT.parent / "shared" / "data" / "conll2003"

# ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then 5.. in this order.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "EU", "rejects", "German", "call", "Ger", "##man", "##y", "##s",
         "U", "S", ".", "'", "s", "-", "based"]
CLS, SEP, UNK = 2, 3, 1


def vid(token):
    return VOCAB.index(token)


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- read_conll -------------------------------------------------------------


def test_read_conll_skips_docstart_and_blank_lines(tmp_path):
    path = write(tmp_path / "a.txt", """
        -DOCSTART- -X- O O

        EU NNP I-NP I-ORG
        rejects VBZ I-VP O


        German JJ I-NP I-MISC
        -DOCSTART- -X- O O
        Peter NNP I-NP I-PER
        Blackburn NNP I-NP I-PER
        """)
    sentences = read_conll(path)
    assert [(s.words, s.tags, s.line) for s in sentences] == [
        (["EU", "rejects"], ["I-ORG", "O"], 3),
        (["German"], ["I-MISC"], 7),
        (["Peter", "Blackburn"], ["I-PER", "I-PER"], 9),  # no blank line at the end of the file
    ]


def test_read_conll_tag_is_the_last_column_and_tabs_work(tmp_path):
    path = write(tmp_path / "a.txt", "Paris\tB-LOC\nis\tO\n")
    assert read_conll(path)[0].tags == ["B-LOC", "O"]


@pytest.mark.parametrize("content,expected", [
    ("EU NNP I-NP I-ORG\nrejects\n", r"a\.txt: line 2: expected a word and a tag"),
    ("EU NNP I-NP I-ORG\n\nrejects VBZ O\n", r"a\.txt: line 3: expected 4 columns as on line 1, found 3"),
    ("EU NNP I-NP I-ORG\nrejects VBZ I-VP E-ORG\n", r"a\.txt: line 2: tag 'E-ORG' is not O, B-<type> or I-<type>"),
    ("-DOCSTART- -X- O O\n\n", r"a\.txt: no tagged words found"),
])
def test_read_conll_errors_name_file_and_line(tmp_path, content, expected):
    path = write(tmp_path / "a.txt", content)
    with pytest.raises(DataError, match=expected):
        read_conll(path)


def test_read_conll_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing.txt: file not found"):
        read_conll(tmp_path / "missing.txt")


# --- IOB1 -> BIO ------------------------------------------------------------


def test_iob1_to_bio_by_hand():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "B-ORG", "O", "I-MISC"]
    assert iob1_to_bio(iob1) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "B-ORG", "O", "B-MISC"]
    assert iob1_to_bio(iob1_to_bio(iob1)) == iob1_to_bio(iob1)  # BIO stays BIO
    assert entity_spans(iob1_to_bio(iob1)) == entity_spans(iob1)


def test_to_bio_detects_and_checks_schemes(tmp_path):
    iob1 = [TaggedSentence(["a", "b"], ["O", "O"], 1), TaggedSentence(["c", "d"], ["O", "I-PER"], 4)]
    converted, scheme = to_bio(iob1, "auto")
    assert scheme == "iob1" and converted[1].tags == ["O", "B-PER"] and iob1[1].tags == ["O", "I-PER"]
    bio = [TaggedSentence(["c", "d"], ["B-PER", "I-PER"], 1)]
    assert to_bio(bio, "auto") == (bio, "bio")
    assert to_bio(bio, "iob1")[0][0].tags == ["B-PER", "I-PER"]
    with pytest.raises(DataError, match=r"train.txt: line 5: tag 'I-PER' starts an entity.*iob1"):
        to_bio(iob1, "bio", name="train.txt")


def test_shared_conll2003_is_iob1():
    if not (SHARED_CONLL / "valid.txt").exists():
        pytest.skip(f"shared CoNLL-2003 data not found at {SHARED_CONLL}")
    sentences = read_conll(SHARED_CONLL / "valid.txt")
    converted, scheme = to_bio(sentences)
    assert scheme == "iob1" and len(sentences) == 3250 and sum(len(s.words) for s in sentences) == 51362
    gold = entity_scores([s.tags for s in sentences], [s.tags for s in converted])
    assert gold["f1"] == 1.0 and gold["gold"] == 1842 + 1837 + 1341 + 922


def test_labels_saved_and_reloaded(tmp_path):
    path = tmp_path / "labels.txt"
    train = [TaggedSentence(["a", "b"], ["B-PER", "O"], 1)]
    assert load_or_save_labels(path, train) == ["B-PER", "O"]
    assert path.read_text() == "B-PER\nO\n"
    assert load_or_save_labels(path, [TaggedSentence(["a"], ["O"], 1)]) == ["B-PER", "O"]
    with pytest.raises(DataError, match=r"labels.txt: the saved labels .* lack the training tags \['B-LOC'\]"):
        load_or_save_labels(path, [TaggedSentence(["a"], ["B-LOC"], 1)])


# --- WordPiece alignment ----------------------------------------------------

LABELS = ["B-LOC", "B-MISC", "B-ORG", "I-ORG", "O"]


def encode(sentences, sequence_length=16):
    pre = BertPreprocessor(VOCAB, sequence_length=sequence_length, lowercase=False)
    return encode_tagged_sentences(sentences, pre, LABELS, name="test")


def test_alignment_labels_the_first_piece_of_each_word():
    sentence = TaggedSentence(["EU", "rejects", "Germany", "'s", "U.S.-based", "call", "\u00ad"],
                              ["B-ORG", "O", "B-LOC", "O", "B-MISC", "O", "O"], 1)
    enc = encode([sentence], sequence_length=32)
    # WordPiece is greedy longest-match-first: Germany = German ##y; punctuation splits words further.
    expected_tokens = ["[CLS]", "EU", "rejects", "German", "##y", "'", "s", "U", ".", "S", ".", "-", "based",
                       "call", "[UNK]", "[SEP]"]
    assert enc.token_ids.to_list() == [[vid(t) for t in expected_tokens]]
    # Word starts: EU=1 rejects=2 Germany=3 's=5 U.S.-based=7 call=13; the soft hyphen (deleted by BERT's
    # normalizer) still gets a position, as [UNK].
    starts = [1, 2, 3, 5, 7, 13, 14]
    assert enc.word_starts[0].tolist() == starts
    weights = np.zeros(16)
    weights[starts] = 1
    labels = np.zeros(16, int)
    labels[starts] = [LABELS.index(t) for t in sentence.tags]
    assert enc.label_weights.to_list() == [weights.tolist()]
    assert enc.labels.to_list() == [labels.tolist()]
    assert enc.num_truncated_words == 0


def test_truncation_is_counted_logged_and_predicted_o(caplog):
    sentences = [
        TaggedSentence(["EU", "rejects", "Germans", "call"], ["B-ORG", "O", "B-LOC", "O"], 1),  # 6 pieces
        TaggedSentence(["EU", "call"], ["B-ORG", "O"], 7),
    ]
    with caplog.at_level("INFO", logger="absl"):
        enc = encode(sentences, sequence_length=6)  # room for 4 pieces: EU rejects German ##s
    assert "test: 1 of 6 words (in 1 of 2 sentences) cut off at 6 tokens" in caplog.text
    assert enc.num_truncated_words == 1
    assert enc.token_ids.to_list()[0] == [CLS, vid("EU"), vid("rejects"), vid("German"), vid("##s"), SEP]
    assert enc.word_starts[0].tolist() == [1, 2, 3]  # "call" is cut
    assert enc.label_weights.to_list()[0] == [0, 1, 1, 1, 0, 0]

    def always_b_loc(features, training=False):  # logits for B-LOC (id 0) everywhere
        return tf.one_hot(tf.zeros_like(features["token_ids"]), len(LABELS))

    tags = predict_word_tags(always_b_loc, enc, LABELS, batch_size=1)
    assert tags == [["B-LOC", "B-LOC", "B-LOC", "O"], ["B-LOC", "B-LOC"]]


def test_unknown_eval_tag_has_weight_zero():
    enc = encode([TaggedSentence(["EU", "call"], ["B-PER", "O"], 1)])
    assert enc.label_weights.to_list() == [[0, 0, 1, 0]]


def test_dataset_batches_pads_and_shards():
    sentences = [TaggedSentence(["EU"] * n, ["B-ORG"] + ["O"] * (n - 1), 1) for n in range(1, 11)]
    enc = encode(sentences)
    features, labels = next(iter(tagging_dataset(enc, 4, training=False)))
    assert features["token_ids"].shape == (4, 6) and labels["label_weights"].shape == (4, 6)
    assert features["padding_mask"].numpy().sum(1).tolist() == [3, 4, 5, 6]
    assert labels["label_weights"].numpy().sum(1).tolist() == [1, 2, 3, 4]
    assert features["segment_ids"].numpy().max() == 0
    shard = tagging_dataset(enc, 8, training=False, input_context=tf.distribute.InputContext(2, 1, 2))
    assert next(iter(shard))[0]["padding_mask"].numpy().sum(1).tolist() == [4, 6, 8, 10, 12]
    batches = [next(iter(tagging_dataset(enc, 4, training=True, seed=3)))[1]["label_weights"].numpy().sum(1).tolist()
               for _ in range(2)]
    assert batches[0] == batches[1] and len(batches[0]) == 4  # seeded: the same batches again


def test_dataset_without_buckets_batches_shuffled_consecutive_sentences():
    """tag.py --nobucket_by_length: an epoch is every sentence once, in shuffled order, any lengths together."""
    enc = encode([TaggedSentence(["EU"] * n, ["B-ORG"] + ["O"] * (n - 1), 1) for n in range(1, 11)])
    ds = tagging_dataset(enc, 2, training=True, seed=3, bucket_by_length=False)
    words = [int(w) for _, labels in ds.take(5) for w in labels["label_weights"].numpy().sum(1)]
    assert sorted(words) == list(range(1, 11)) and words != sorted(words)


# --- Entity F1 vs seqeval ---------------------------------------------------


def seqeval_scores(gold, predicted):
    metrics = pytest.importorskip("seqeval.metrics", reason="seqeval (the reference) is in the 'test' extra")
    with warnings.catch_warnings():  # seqeval's averages of empty reports warn
        warnings.simplefilter("ignore")
        report = metrics.classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {t: r for t, r in report.items() if "avg" not in t}
    return (metrics.precision_score(gold, predicted, zero_division=0),
            metrics.recall_score(gold, predicted, zero_division=0),
            metrics.f1_score(gold, predicted, zero_division=0), per_type)


def assert_same_as_seqeval(gold, predicted):
    ours = entity_scores(gold, predicted)
    precision, recall, f1, per_type = seqeval_scores(gold, predicted)
    assert (ours["precision"], ours["recall"], ours["f1"]) == (precision, recall, f1)
    for entity_type, scores in per_type.items():
        mine = ours["per_type"][entity_type]
        assert (mine["precision"], mine["recall"], mine["f1"], mine["gold"]) == (
            scores["precision"], scores["recall"], scores["f1-score"], scores["support"])
    assert set(ours["per_type"]) == set(per_type)  # types in gold or predicted tags


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "I-ORG", "B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "I-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    # Found: PER and LOC (I-LOC after O starts an entity). Gold has ORG 0-1 and ORG 2-2 in sentence 2 (IOB1);
    # the predicted ORG runs over words 0-2, so it matches neither.
    scores = entity_scores(gold, predicted)
    assert (scores["correct"], scores["predicted"], scores["gold"]) == (2, 3, 4)
    assert scores["precision"] == 2 / 3 and scores["recall"] == 0.5 and scores["accuracy"] == 5 / 8
    assert scores["per_type"]["ORG"]["correct"] == 0 and scores["per_type"]["ORG"]["gold"] == 2
    assert_same_as_seqeval(gold, predicted)
    assert entity_scores([["O"]], [["O"]])["f1"] == 0.0  # nothing to find: 0, as seqeval


def test_entity_scores_equal_seqeval_on_random_tags():
    rng = np.random.default_rng(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "I-MISC"]
    for _ in range(300):
        lengths = rng.integers(0, 12, size=rng.integers(1, 6))
        gold = [[str(t) for t in rng.choice(tags, size=n)] for n in lengths]
        # Predictions: the gold tags with some changed, so that some entities match.
        predicted = [[t if rng.random() < 0.7 else str(rng.choice(tags)) for t in sentence] for sentence in gold]
        assert_same_as_seqeval(gold, predicted)


def test_entity_scores_reject_unknown_tags():
    with pytest.raises(ValueError, match="'S-PER' is not O, B-<type> or I-<type>"):
        entity_scores([["S-PER"]], [["O"]])


# --- Loss and model ---------------------------------------------------------


def numpy_token_loss(labels, weights, logits):
    return (ref.cross_entropy(logits, labels) * weights).sum() / weights.sum()


def test_masked_loss_is_the_mean_over_labelled_tokens():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, (3, 7)).astype(np.int32)
    weights = (rng.random((3, 7)) < 0.5).astype(np.float32)
    weights[0] = 0  # a sentence with no labelled token
    logits = rng.normal(size=(3, 7, 5)).astype(np.float32)
    y = {"labels": labels, "label_weights": weights}
    per_example = tagging_losses.masked_token_loss(y, logits).numpy()
    assert per_example.shape == (3,) and per_example[0] == 0
    np.testing.assert_allclose(per_example.mean(), numpy_token_loss(labels, weights, logits), rtol=1e-6)
    correct, count = tagging_losses.token_accuracy(y, logits)
    expected = ((logits.argmax(-1) == labels) * weights).sum() / weights.sum()
    np.testing.assert_allclose(correct.numpy().sum() / count.numpy().sum(), expected, rtol=1e-6)


# The masked loss over two replicas (9 and 3 labelled tokens) is the global token mean: tests/test_training.py
# (tests/scripts/mirrored_check.py, a process with two logical CPUs).


def test_token_classifier_shape_dtype_and_config_round_trip():
    model = BertTokenClassifier(Bert.from_preset("bert_nano"), num_classes=9, dropout=0.2)
    x = {"token_ids": np.array([[2, 7, 8, 3, 0]], np.int32), "segment_ids": np.zeros((1, 5), np.int32),
         "padding_mask": np.array([[1, 1, 1, 1, 0]], bool)}
    logits = model(x)
    assert tuple(logits.shape) == (1, 5, 9) and keras.backend.standardize_dtype(logits.dtype) == "float32"
    config = model.get_config()
    again = BertTokenClassifier.from_config(config)
    assert again.get_config() == config and again.num_classes == 9 and again.dropout == 0.2
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(restored) is BertTokenClassifier
    restored.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(logits))


# --- recipes/tag.py end to end ----------------------------------------------

FIRST = ["Anna", "Boris", "Carla", "Dmitri", "Elena", "Farid"]
LAST = ["Smith", "Ivanov", "Rossi", "Khan"]
CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Delhi"]
FILLER = ["the", "report", "said", "on", "Monday", "that", "visited", "met", "in", "and", "."]


def write_toy_conll(path, n, seed):
    """IOB1 CoNLL: persons (first name, maybe a last name) and places among filler words; entities may touch."""
    rng = np.random.default_rng(seed)
    lines = ["-DOCSTART- -X- O O", ""]

    def start(words, entity_type):  # IOB1: B- only where an entity touches one of its type
        return ("B-" if words and words[-1][1].endswith(entity_type) else "I-") + entity_type

    for _ in range(n):
        words = []
        for _ in range(int(rng.integers(3, 10))):
            r = rng.random()
            if r < 0.1:  # "Jordan" needs context: a person after "met", a country after "in"
                context, entity_type = ("met", "PER") if rng.random() < 0.5 else ("in", "LOC")
                words.append((context, "O"))
                words.append(("Jordan", start(words, entity_type)))
            elif r < 0.25:
                words.append((str(rng.choice(FIRST)), start(words, "PER")))
                if rng.random() < 0.5:
                    words.append((str(rng.choice(LAST)), "I-PER"))
            elif r < 0.4:
                words.append((str(rng.choice(CITIES)), start(words, "LOC")))
            else:
                words.append((str(rng.choice(FILLER)), "O"))
        lines += [f"{w} X X {t}" for w, t in words] + [""]
    path.write_text("\n".join(lines) + "\n")


def test_tag_recipe_learns_a_toy_ner_task(tmp_path):
    write_toy_conll(tmp_path / "train.txt", 640, seed=0)
    write_toy_conll(tmp_path / "valid.txt", 100, seed=1)
    proc = run_script(
        "recipes/tag.py", f"--train_file={tmp_path / 'train.txt'}", f"--eval_file={tmp_path / 'valid.txt'}",
        f"--model_dir={tmp_path / 'model'}", "--preset=bert_nano", "--vocab_size=100", "--max_seq_length=14",
        "--batch_size=32", "--learning_rate=5e-3", "--epochs=20", "--dropout=0.0", "--strategy=cpu",
        "--log_every=100", "--checkpoint_every=1000",
    )
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert results["f1"] >= 0.9, (results, proc.stdout)
    assert set(results["per_type"]) == {"PER", "LOC"} and results["step"] == 400  # 640 / 32 * 20
    assert "eval: entity F1" in proc.stdout and "PER  F1" in proc.stdout
    assert "IOB1 tags (converted to BIO)" in proc.stderr
    assert (tmp_path / "model" / "labels.txt").read_text().split() == ["B-LOC", "B-PER", "I-PER", "O"]
    # max_seq_length=14 leaves 12 pieces: a few long sentences are cut, which is logged, and the entities
    # cut off still count as gold (missed), not dropped.
    assert "cut off at 14 tokens" in proc.stderr and results["truncated_words"] > 0
    gold = read_conll(tmp_path / "valid.txt")
    assert results["gold"] == sum(len(entity_spans(s.tags)) for s in gold)
    assert results["words"] == sum(len(s.words) for s in gold)
    # The loss, labelled-token accuracy and F1 are the final model's on valid.txt, recomputed here: numpy's
    # cross-entropy over the labelled tokens, and the library's word-tag prediction.
    loaded = load(tmp_path / "model")
    labels = (tmp_path / "model" / "labels.txt").read_text().split()
    sentences = to_bio(gold)[0]
    encoded = encode_tagged_sentences(sentences, loaded.preprocessor(), labels)
    losses, correct = [], []
    for features, targets in tagging_dataset(encoded, 32, training=False):
        logits = loaded.model(features, training=False).numpy()
        tags, weights = targets["labels"].numpy(), targets["label_weights"].numpy() > 0
        losses.extend(ref.cross_entropy(logits, tags)[weights])
        correct.extend((logits.argmax(-1) == tags)[weights])
    assert results["loss"] == pytest.approx(np.mean(losses), rel=1e-4)
    assert results["labelled_token_accuracy"] == pytest.approx(np.mean(correct), abs=1e-6)
    f1 = entity_scores([s.tags for s in sentences], predict_word_tags(loaded.model, encoded, labels))["f1"]
    assert results["f1"] == pytest.approx(f1, abs=1e-9)


def test_tag_recipe_wrong_tag_scheme_names_file_line_and_flag(tmp_path):
    write_toy_conll(tmp_path / "train.txt", 20, seed=0)
    proc = run_script("recipes/tag.py", f"--train_file={tmp_path / 'train.txt'}",
                      f"--model_dir={tmp_path / 'model'}", "--tag_scheme=bio", "--strategy=cpu", check=False)
    assert proc.returncode != 0
    assert f"{tmp_path / 'train.txt'} (--tag_scheme=bio): line " in proc.stderr, proc.stderr[-2000:]
    assert "starts an entity, which BIO tags as B-" in proc.stderr
