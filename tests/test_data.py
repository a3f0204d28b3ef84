"""Labeled-text readers, `BertPreprocessor` packing and the classification
`tf.data` pipeline, checked against hand-computed expectations."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import logging

from tfllm.data import DataError
from tfllm.data import classification_dataset
from tfllm.data import read_labeled_text
from tfllm.data import steps_per_epoch
from tfllm.models.bert.bert_preprocessor import BertPreprocessor

# ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then words w0..w19 = 5..24.
WORDS = [f"w{i}" for i in range(20)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s"]
CLS, SEP = 2, 3


def ids(words):
    return [VOCAB.index(w) for w in words.split()]


@pytest.fixture(scope="module")
def toy():
    """600 texts of 1-40 words (length known by construction) and labels."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 41, size=600)
    texts = [" ".join(rng.choice(WORDS, size=n)) for n in lengths]
    labels = rng.integers(0, 3, size=600).astype(np.int32)
    return texts, labels, lengths


# --- read_labeled_text -----------------------------------------------------


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_tsv(tmp_path):
    path = write(tmp_path / "a.tsv", 'label\tsentence\n1\tit \'s "great"\n0\tdull , slow\n\n')
    texts, labels = read_labeled_text(path, num_classes=2)
    assert texts == ['it \'s "great"', "dull , slow"]
    assert labels.dtype == np.int32 and labels.tolist() == [1, 0]


def test_read_csv_with_quoting_and_other_columns(tmp_path):
    path = write(tmp_path / "a.csv", 'id,text,y\n7,"Hello, world",2\n8,"say ""hi""",0\n')
    texts, labels = read_labeled_text(path, text_column="text", label_column="y", num_classes=3)
    assert texts == ["Hello, world", 'say "hi"'] and labels.tolist() == [2, 0]


def test_a_quoted_field_over_several_lines_is_read_and_reported(tmp_path, caplog):
    """Legal CSV, but usually an unbalanced quote that swallowed the rows after it: read as CSV says, with a warning
    naming the lines (here the "rows" 0,the plot and 0,bad become part of the first text)."""
    path = write(tmp_path / "a.csv", 'label,sentence\n1,"a fine film\n0,the plot\n0,bad\n')
    with caplog.at_level(logging.WARNING, logger="absl"):
        texts, labels = read_labeled_text(path)
    assert texts == ["a fine film\n0,the plot\n0,bad\n"] and labels.tolist() == [1]
    assert f"{path}: 1 row(s) hold a quoted field over several lines, the first at lines 2-4" in caplog.text


def test_read_other_extension_needs_delimiter(tmp_path):
    path = write(tmp_path / "a.txt", "label|sentence\n1|ok\n")
    with pytest.raises(DataError, match="delimiter"):
        read_labeled_text(path)
    assert read_labeled_text(path, delimiter="|")[0] == ["ok"]


def test_read_sst2(sst2_dir):
    texts, labels = read_labeled_text(sst2_dir / "dev.tsv", num_classes=2)
    lines = (sst2_dir / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(texts) == len(labels) == len(lines) == 872
    assert texts[0] == lines[0].split("\t")[1] and labels[0] == int(lines[0].split("\t")[0])


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("missing.tsv", None, {}, r"missing\.tsv: file not found"),
        ("a.tsv", "", {}, r"a\.tsv: empty file, expected a header row"),
        ("a.tsv", "label\ttext\n1\tx\n", {},
         r"a\.tsv: line 1: no column 'sentence'; columns found: \['label', 'text'\]"),
        ("a.tsv", "label\tsentence\n1\tok\npos\tbad\n", {},
         r"a\.tsv: line 3: label 'pos' in column 'label' is not an integer"),
        ("a.tsv", "label\tsentence\n1\tok\n2\tbad\n", {"num_classes": 2},
         r"a\.tsv: line 3: label 2 out of range, expected 0\.\.1"),
        ("a.tsv", "label\tsentence\n-1\tbad\n", {}, r"a\.tsv: line 2: label -1 out of range, expected >= 0"),
        ("a.tsv", "label\tsentence\n1\tok\n\n0\t  \n", {}, r"a\.tsv: line 4: empty text in column 'sentence'"),
        ("a.tsv", "label\tsentence\n1\tok\n0\tone\ttwo\n", {},
         r"a\.tsv: line 3: expected 2 fields \(label, sentence\), found 3"),
        ("a.csv", 'label,sentence\n1,ok\n0,"a\nb"\n1\n', {},
         r"a\.csv: line 5: expected 2 fields \(label, sentence\), found 1"),
    ],
)
def test_read_errors_name_file_line_and_expectation(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(DataError, match=message):
        read_labeled_text(path, **kwargs)
    assert issubclass(DataError, ValueError)


# --- BertPreprocessor --------------------------------------------------------


def test_preprocessor_single_segment():
    pre = BertPreprocessor(VOCAB, sequence_length=6)
    out = pre(["w1 W2s", "", "w1 w2 w3 w4 w5 w6", "w1 zzz"])
    np.testing.assert_array_equal(
        out["token_ids"],
        [
            [CLS, 6, 7, 25, SEP, 0],  # "W2s" -> w2 ##s (lower-cased)
            [CLS, SEP, 0, 0, 0, 0],
            [CLS, 6, 7, 8, 9, SEP],  # truncated: 4 words + [CLS] + [SEP]
            [CLS, 6, 1, SEP, 0, 0],  # unknown word -> [UNK]
        ],
    )
    np.testing.assert_array_equal(out["segment_ids"], np.zeros((4, 6)))
    np.testing.assert_array_equal(out["padding_mask"], out["token_ids"].numpy() != 0)
    assert {k: v.dtype for k, v in out.items()} == {
        "token_ids": tf.int32, "segment_ids": tf.int32, "padding_mask": tf.bool
    }


def test_preprocessor_pair_longest_first_truncation():
    pre = BertPreprocessor(VOCAB, sequence_length=9)
    out = pre((["w1 w2", "w1 w2 w3 w4 w5"], ["w10 w11 w12 w13 w14", "w10"]))
    # Budget 9 - 3 specials = 6 tokens: [2, 4] both fit after trimming b to 4;
    # [5, 1] -> a keeps 5.
    np.testing.assert_array_equal(
        out["token_ids"],
        [
            [CLS] + ids("w1 w2") + [SEP] + ids("w10 w11 w12 w13") + [SEP],
            [CLS] + ids("w1 w2 w3 w4 w5") + [SEP] + ids("w10") + [SEP],
        ],
    )
    np.testing.assert_array_equal(out["segment_ids"], [[0, 0, 0, 0, 1, 1, 1, 1, 1], [0] * 7 + [1, 1]])


def test_preprocessor_in_tf_function_and_keras_round_trip(tmp_path):
    pre = BertPreprocessor(VOCAB, sequence_length=8, name="pre")
    texts = tf.constant(["w1 w2", "w3"])
    eager = pre(texts)
    graph = tf.function(lambda x: pre(x))(texts)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, pre(inputs))
    model.save(tmp_path / "pre.keras")
    loaded = keras.saving.load_model(tmp_path / "pre.keras")
    assert loaded.get_layer("pre").get_config() == pre.get_config()
    for out in (graph, loaded(texts)):
        for key in eager:
            np.testing.assert_array_equal(out[key], eager[key])


def test_pack_ragged_counts_truncation():
    pre = BertPreprocessor(VOCAB, sequence_length=5)
    texts = ["w1", "w1 w2 w3", "w1 w2 w3 w4", ""]  # lengths 3, 5, 6 (cut), 2
    features, num_truncated = pre.pack_ragged(texts, batch_size=3)  # 2 chunks
    assert num_truncated == 1
    assert features["token_ids"].to_list() == [
        [CLS, 6, SEP], [CLS, 6, 7, 8, SEP], [CLS, 6, 7, 8, SEP], [CLS, SEP]
    ]
    assert features["segment_ids"].to_list() == [[0] * 3, [0] * 5, [0] * 5, [0] * 2]
    pairs, num_truncated = pre.pack_ragged((["w1", "w1 w2"], ["w2", "w3 w4"]))
    assert num_truncated == 1 and pairs["segment_ids"].to_list() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]


# --- classification_dataset ------------------------------------------------


@pytest.fixture(scope="module")
def pre32():
    """One preprocessor shared by the pipeline tests (its packing is traced once)."""
    return BertPreprocessor(VOCAB, sequence_length=32)


def unpad(features):
    """Rows of token ids without padding, from a batch."""
    return [row[mask].tolist() for row, mask in zip(features["token_ids"].numpy(), features["padding_mask"].numpy())]


def test_eval_dataset_keeps_every_example_in_order(toy, pre32):
    texts, labels, lengths = toy
    pre = pre32
    ds = classification_dataset(texts, labels, pre, batch_size=64, training=False)
    batches = list(ds)
    assert len(batches) == steps_per_epoch(600, 64, drop_remainder=False) == 10
    assert batches[-1][1].shape == (600 - 9 * 64,)
    rows = [r for x, _ in batches for r in unpad(x)]
    expected = [[CLS] + ids(t)[:30] + [SEP] for t in texts]
    assert rows == expected
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    for x, _ in batches:  # padded to the longest row of each batch
        assert x["token_ids"].shape[1] == x["padding_mask"].numpy().sum(1).max()
        np.testing.assert_array_equal(x["token_ids"].numpy()[~x["padding_mask"].numpy()], 0)


def test_training_dataset_batches_buckets_and_determinism(toy, pre32):
    texts, labels, lengths = toy
    pre = pre32
    expected = {(tuple([CLS] + ids(t)[:30] + [SEP]), int(y)) for t, y in zip(texts, labels)}

    def first(seed, n=20):
        ds = classification_dataset(texts, labels, pre, batch_size=32, training=True, seed=seed,
                                    bucket_by_length=True)
        assert ds.element_spec[0] == {
            "token_ids": tf.TensorSpec([None, None], tf.int32),
            "segment_ids": tf.TensorSpec([None, None], tf.int32),
            "padding_mask": tf.TensorSpec([None, None], tf.bool),
        }
        return list(itertools.islice(ds.as_numpy_iterator(), n))

    a, b, c = first(1), first(1), first(2)
    for (xa, ya), (xb, yb) in zip(a, b):
        for key in xa:
            np.testing.assert_array_equal(xa[key], xb[key])
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) or xa["token_ids"].shape != xc["token_ids"].shape
               for (xa, ya), (xc, yc) in zip(a, c))
    widths = set()
    for x, y in a:  # 20 batches of 32 > 600 examples: repeat() runs past epoch 1
        assert y.shape == (32,)
        rows = [r for r, m in zip(x["token_ids"], x["padding_mask"])]
        lens = x["padding_mask"].sum(1)
        assert x["token_ids"].shape[1] == lens.max() <= 32
        for row, n, label in zip(rows, lens, y):
            assert (tuple(row[:n]), int(label)) in expected
        # Bucketed: all lengths of a batch fall in one default bucket.
        edges = [0, 9, 17, 25, 33]
        assert len({np.searchsorted(edges, n, side="right") for n in lens}) == 1
        widths.add(x["token_ids"].shape[1])
    assert len(widths) > 2


def test_training_dataset_without_buckets_shuffles_every_row_into_mixed_length_batches(toy, pre32):
    """`bucket_by_length=False`: a free shuffle, as `transformers`' DataLoader's, not length buckets."""
    texts, _, lengths = toy
    row_numbers = np.arange(len(texts), dtype=np.int32)  # as labels: each batch says which rows it holds
    per_epoch = len(texts) // 32

    def first_epoch(seed):
        ds = classification_dataset(texts, row_numbers, pre32, batch_size=32, training=True, seed=seed,
                                    bucket_by_length=False)
        return list(itertools.islice(ds.as_numpy_iterator(), per_epoch))

    batches = first_epoch(1)
    rows = np.concatenate([y for _, y in batches])
    assert len(rows) == len(set(rows)) == per_epoch * 32  # one pass: no row twice before every row once
    assert batches[0][1].max() >= 400 and batches[0][1].min() < 200  # the shuffle buffer holds every row
    for x, y in batches:
        assert y.shape == (32,)
        np.testing.assert_array_equal(x["padding_mask"].sum(1), np.minimum(lengths[y], 30) + 2)  # rows y
        assert x["token_ids"].shape[1] == x["padding_mask"].sum(1).max()  # padded to the batch's longest
        assert lengths[y].max() - lengths[y].min() >= 20  # lengths 1-40 together, not one bucket's
    assert np.any(np.diff(lengths[rows]) < 0) and np.any(np.diff(lengths[rows]) > 0)  # not sorted by length
    np.testing.assert_array_equal(rows, np.concatenate([y for _, y in first_epoch(1)]))  # seeded
    assert not np.array_equal(rows, np.concatenate([y for _, y in first_epoch(2)]))


def test_sharding_and_truncation_log(toy, pre32, monkeypatch):
    texts, labels, lengths = toy
    messages = []
    monkeypatch.setattr(logging, "info", lambda msg, *args: messages.append(msg % args))
    pre = pre32
    context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=1)
    ds = classification_dataset(texts, labels, pre, 50, training=False, input_context=context, name="toy/train.tsv")
    np.testing.assert_array_equal(np.concatenate([y for _, y in ds]), labels[1::3])
    cut = int(np.sum(lengths[1::3] + 2 > 32))  # lengths are word counts = token counts
    assert cut > 0
    assert messages == [f"toy/train.tsv (shard 1 of 3): {cut} of 200 texts truncated to 32 tokens"]


def test_pairs_dataset():
    pre = BertPreprocessor(VOCAB, sequence_length=16)
    ds = classification_dataset((["w1", "w2 w3"], ["w4", "w5"]), [0, 1], pre, 2, training=False)
    x, y = next(iter(ds))
    assert unpad(x) == [[CLS, 6, SEP, 9, SEP], [CLS, 7, 8, SEP, 10, SEP]]
    np.testing.assert_array_equal(x["segment_ids"], [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]])


def test_steps_per_epoch():
    assert steps_per_epoch(67349, 64) == 1052
    assert steps_per_epoch(872, 64, drop_remainder=False) == 14
    assert steps_per_epoch(10, 64) == 1


def test_test_processes_iterate_without_the_autotuning_thread():
    """tests/tf_data_autotune.py is in effect here: freed iterators cannot stall the suite for up to 60 s."""
    iterator = iter(tf.data.Dataset.range(3).prefetch(tf.data.AUTOTUNE))
    assert iterator._dataset.options().autotune.enabled is False
    assert [int(x) for x in iterator] == [0, 1, 2]
