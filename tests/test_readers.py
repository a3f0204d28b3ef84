"""The data readers on awkward files: bytes that are not UTF-8, a byte-order mark,
huge CSV fields, and files with nothing usable in them."""

import codecs
import json
import re

import numpy as np
import pytest

from tfllm.data import language_modeling as lm_data
from tfllm.data import parallel_text
from tfllm.data import pretraining
from tfllm.data.conll import read_conll
from tfllm.data.errors import DataError
from tfllm.data.squad import read_squad
from tfllm.data.text_classification import read_labeled_text
from tfllm.data.vocabulary_files import read_texts

SQUAD = {"version": "1.1", "data": [{"title": "bad", "paragraphs": [{
    "context": "Paris is in France.",
    "qas": [{"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}],
}]}]}

# name: (file name, valid UTF-8 content, a reader of it returning something comparable)
READERS = {
    "tsv": ("train.tsv", "sentence\tlabel\ncafé ok\t1\nbad\t0\n", lambda p: read_labeled_text(p)[0]),
    "csv": ("train.csv", 'sentence,label\n"café, ok",1\nbad,0\n', lambda p: read_labeled_text(p)[0]),
    "conll": ("train.conll", "-DOCSTART- O\n\nCafé NNP B-ORG\nbad NN O\n",
              lambda p: [s.words for s in read_conll(p)]),
    "parallel": ("train.src", "café\nbad\n", parallel_text.read_lines),
    "language model": ("input.txt", "café\nbad\n", lm_data.read_text),
    "pretraining": ("corpus.txt", "café\nbad\n", lambda p: pretraining.read_documents([p])),
    "vocabulary texts": ("texts.txt", "café\nbad\n", lambda p: read_texts([p])),
    "squad": ("train.json", json.dumps(SQUAD, ensure_ascii=False, indent=1),
              lambda p: [(e.question, e.context) for e in read_squad(p)]),
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("reader", list(READERS))
def test_bytes_that_are_not_utf8_name_file_line_and_byte_offset(tmp_path, reader, newline):
    name, text, read = READERS[reader]
    # "bad" becomes Latin-1 "b\xe4d" (ä), as in a file saved in the wrong encoding.
    raw = text.replace("\n", newline).encode("utf-8").replace(b"bad", b"b\xe4d")
    path = tmp_path / name
    path.write_bytes(raw)
    offset = raw.index(b"\xe4")
    line = raw[:offset].count(b"\n") + 1
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: line {line}, byte offset {offset}: "
                                        r"b'\\xe4' is not UTF-8") as error:
        read(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("reader", list(READERS))
def test_a_byte_order_mark_at_the_start_is_ignored(tmp_path, reader):
    name, text, read = READERS[reader]
    plain, with_bom = tmp_path / name, tmp_path / "bom" / name
    with_bom.parent.mkdir()
    plain.write_text(text, encoding="utf-8")
    with_bom.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    assert read(with_bom) == read(plain)
    assert "\ufeff" not in str(read(with_bom))


def test_a_utf8_error_after_a_byte_order_mark_counts_the_mark_in_the_offset(tmp_path):
    path = tmp_path / "train.tsv"
    raw = codecs.BOM_UTF8 + b"sentence\tlabel\nb\xe4d\t1\n"
    path.write_bytes(raw)
    offset = raw.index(b"\xe4")  # 18: the three BOM bytes count.
    with pytest.raises(DataError, match=rf"line 2, byte offset {offset}:"):
        read_labeled_text(path)


def test_csv_fields_longer_than_the_csv_module_default_limit(tmp_path):
    long_text = "word, " * 40_000 + 'and "quoted"'  # 240,012 characters > 131,072.
    path = tmp_path / "long.csv"
    quoted = long_text.replace('"', '""')
    path.write_text(f'sentence,label\n"{quoted}",1\nshort,0\n', encoding="utf-8")
    texts, labels = read_labeled_text(path)
    assert texts == [long_text, "short"]
    np.testing.assert_array_equal(labels, [1, 0])


def test_a_broken_csv_line_is_a_data_error_naming_its_line(tmp_path):
    path = tmp_path / "carriage_return.csv"
    path.write_bytes(b"sentence,label\nok,1\nstray carriage return\r,0\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: line 3: "):
        read_labeled_text(path)


@pytest.mark.parametrize("empty_side", ["source", "target"])
def test_an_empty_parallel_file_names_that_file(tmp_path, empty_side):
    source, target = tmp_path / "train.en", tmp_path / "train.de"
    source.write_text("" if empty_side == "source" else "hello\n", encoding="utf-8")
    target.write_text("" if empty_side == "target" else "hallo\n", encoding="utf-8")
    empty = source if empty_side == "source" else target
    with pytest.raises(DataError, match=rf"^{re.escape(str(empty))}: no text"):
        parallel_text.read_parallel_text(source, target)


def test_all_pairs_filtered_out_is_a_data_error_naming_the_data(tmp_path):
    sources, targets = [[1, 2, 3], [4]], [[5], []]  # Too long a source; an empty target.
    kept = parallel_text.filter_by_length([[1]], [[2]], 2, 3, name="train.en")
    assert kept == ([[1]], [[2]], 0)
    with pytest.raises(DataError, match=r"^train\.en \(train\): all 2 pairs dropped"):
        parallel_text.filter_by_length(sources, targets, 2, 3, name="train.en (train)")


def test_an_empty_language_model_text_is_a_data_error(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no text"):
        lm_data.read_text(path)


def test_a_text_shorter_than_one_block_names_the_file_and_the_split():
    stream = np.arange(50, dtype=np.int32)
    train, validation = lm_data.split_stream(stream, 0.9, block_size=4, name="input.txt")
    assert len(train) == 45 and len(validation) == 5
    with pytest.raises(DataError, match=r"^input\.txt: the validation split has 5 tokens, fewer than one "
                                        r"block of block_size\+1 = 9"):
        lm_data.split_stream(stream, 0.9, block_size=8, name="input.txt")
    with pytest.raises(DataError, match=r"^input\.txt: the train split has 45 tokens"):
        lm_data.lm_dataset(train, 64, batch_size=2, training=True, name="input.txt")
    with pytest.raises(DataError, match=r"^input\.txt: the validation split has 5 tokens"):
        lm_data.lm_dataset(validation, 8, batch_size=2, training=False, name="input.txt")
