"""WordPiece tokenizer: vocabulary files and training, parity with Hugging Face
`tokenizers` (an independent BERT implementation), in-graph use and export."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tokenizers as hf

from tests.fresh_process import serve_in_fresh_process
from tfllm.data import read_labeled_text
from tfllm.data.vocabulary_files import build_vocabulary_file
from tfllm.errors import ConfigError
from tfllm.errors import DataError
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.tokenizers import RESERVED_TOKENS
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers import build_word_piece_vocabulary
from tfllm.tokenizers import load_vocabulary
from tfllm.tokenizers import save_vocabulary
from tfllm.tokenizers.char_tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]

# Corner cases of BERT's normalizer and pre-tokenizer.
HANDMADE = [
    "",
    "   ",
    "Hello, world! It's a (very) good film...",
    "don't -- can't; won't: \"quoted\" [brackets] {braces} <angles> a/b a\\b",
    "$5.99 or 3,000,000 items at 12:30pm, 1st & 2nd, 50% off #tags @user ~ ^ ` |",
    "Héllo wörld, Ça va? naïve café résumé Ünïcödé",
    "Straße, ﬁnance, ＡＢＣ full-width, ² superscript",
    "ΣΑΣ σας İstanbul ΣΊΣΥΦΟΣ",
    "日本語のテキスト and 中文字符 mixed漢字text",
    "a\u00a0b c\u3000d e\u200bf g\x0bh i\tj\nk\r\nl \x00m\ufffdn \u2028o",
    "emoji 🙂 dash — ellipsis … quotes “curly” ‘single’ «guillemets»",
    "supercalifragilisticexpialidocious " + "x" * 100 + " " + "y" * 101,
    "UPPER lower MiXeD CamelCase",
    "the the the , . ! ?",
]


def hf_tokenizer(vocab_path, lowercase):
    return hf.BertWordPieceTokenizer(str(vocab_path), lowercase=lowercase)


def hf_ids(tokenizer, texts):
    return [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def assert_same_ids(ours, ref, texts):
    mismatches = [(t, a, b) for t, a, b in zip(texts, ours, ref) if list(a) != list(b)]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"


@pytest.fixture(scope="module")
def corpus(request):
    """Training text for the test vocabularies: SST-2 dev if present + HANDMADE."""
    dev = Path(__file__).resolve().parents[1].parent / "shared/data/sst2/dev.tsv"
    texts = []
    if dev.exists():
        texts = [line.split("\t", 1)[1].rstrip("\n") for line in open(dev, encoding="utf-8")][1:]
    return texts + HANDMADE * 20


@pytest.fixture(scope="module")
def uncased_vocab(corpus, tmp_path_factory):
    """A 2k vocabulary from Hugging Face's WordPiece trainer (fast, and
    independent of our code; parity holds for any vocabulary)."""
    trainer = hf.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(corpus, vocab_size=2000, special_tokens=list(RESERVED_TOKENS))
    vocab = [t for t, _ in sorted(trainer.get_vocab().items(), key=lambda kv: kv[1])]
    path = tmp_path_factory.mktemp("vocab") / "uncased.txt"
    save_vocabulary(vocab, path)
    return vocab, path


@pytest.fixture(scope="module")
def cased_vocab(uncased_vocab, tmp_path_factory):
    # Cased words and accented characters so the cased tokenizer has something
    # to match; the vocabulary's origin does not matter for parity.
    vocab, _ = uncased_vocab
    words = set()
    normalizer = hf.normalizers.BertNormalizer(lowercase=False)
    for text in HANDMADE:
        for word, _ in hf.pre_tokenizers.BertPreTokenizer().pre_tokenize_str(normalizer.normalize_str(text)):
            words.add(word)
            words.update(word)
            words.update("##" + c for c in word)
    extra = sorted(words - set(vocab))
    path = tmp_path_factory.mktemp("vocab") / "cased.txt"
    save_vocabulary(vocab + extra, path)
    return vocab + extra, path


def test_vocabulary_file_round_trip(tmp_path):
    tokens = ["[PAD]", "[UNK]", "héllo", "##s", "日"]
    save_vocabulary(tokens, tmp_path / "sub" / "vocab.txt")
    assert (tmp_path / "sub" / "vocab.txt").read_text(encoding="utf-8") == "[PAD]\n[UNK]\nhéllo\n##s\n日\n"
    assert load_vocabulary(tmp_path / "sub" / "vocab.txt") == tokens


def test_load_vocabulary_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_vocabulary(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ConfigError, match="empty.txt: empty vocabulary file"):
        load_vocabulary(tmp_path / "empty.txt")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nthe\n")
    assert load_vocabulary(tmp_path / "vocab.txt", required=["[UNK]"]) == ["[PAD]", "[UNK]", "the"]
    with pytest.raises(ConfigError, match=re.escape("vocab.txt: no [CLS] [SEP] among its 3 tokens")):
        load_vocabulary(tmp_path / "vocab.txt", required=["[PAD]", "[CLS]", "[SEP]"])
    with pytest.raises(ConfigError, match=re.escape("the vocabulary: no [UNK] among its 2 tokens")):
        WordPieceTokenizer(["[PAD]", "the"])


def test_build_word_piece_vocabulary_rejects_bad_reserved_tokens():
    with pytest.raises(ValueError, match=r"\[PAD\]"):
        build_word_piece_vocabulary(["a b"], 100, reserved_tokens=("[UNK]", "[PAD]"))


def test_uncased_parity_with_hf_handmade(uncased_vocab):
    vocab, path = uncased_vocab
    ours = WordPieceTokenizer(vocab, lowercase=True)(HANDMADE)
    assert_same_ids(ours, hf_ids(hf_tokenizer(path, True), HANDMADE), HANDMADE)


def test_cased_parity_with_hf_handmade(cased_vocab):
    vocab, path = cased_vocab
    ours = WordPieceTokenizer(path, lowercase=False)(HANDMADE)
    ref = hf_ids(hf_tokenizer(path, False), HANDMADE)
    assert_same_ids(ours, ref, HANDMADE)
    # The cased vocabulary really exercises case: "Héllo" is one known token.
    assert vocab[ref[5][0]] == "Héllo"


def test_uncased_parity_with_hf_on_sst2_dev(uncased_vocab, sst2_dir):
    texts, _ = read_labeled_text(sst2_dir / "dev.tsv")
    vocab, path = uncased_vocab
    ours = WordPieceTokenizer(vocab)(texts)
    ref = hf_ids(hf_tokenizer(path, True), texts)
    assert_same_ids(ours, ref, texts)
    # A 2k vocabulary splits many words: the test covers WordPiece, not just lookup.
    assert sum(len(r) for r in ref) > 1.1 * sum(len(t.split()) for t in texts)


def test_long_non_ascii_word_is_the_known_difference(cased_vocab):
    # tensorflow-text maps words of more than 100 UTF-8 *bytes* to [UNK]; HF
    # (like Google's BERT) uses 100 *characters*. ASCII words agree (see
    # HANDMADE); a 60-character word of 2-byte letters differs.
    vocab, path = cased_vocab
    word = "Héllo" + "é" * 55  # 60 characters, 115 bytes
    ours = WordPieceTokenizer(vocab, lowercase=False)([word])[0]
    ref = hf_ids(hf_tokenizer(path, False), [word])[0]
    assert [vocab[i] for i in ours] == ["[UNK]"]
    assert [vocab[i] for i in ref] == ["Héllo"] + ["##é"] * 55


def test_preprocessor_parity_with_hf_special_tokens(uncased_vocab, sst2_dir):
    texts, _ = read_labeled_text(sst2_dir / "dev.tsv")
    texts = texts + HANDMADE
    vocab, path = uncased_vocab
    length = 24  # Many dev sentences are longer: truncation is exercised.
    out = BertPreprocessor(vocab, sequence_length=length)(texts)
    ref = hf_tokenizer(path, True)
    ref.enable_truncation(max_length=length)
    ref.enable_padding(length=length, pad_id=0)
    enc = ref.encode_batch(texts)
    np.testing.assert_array_equal(out["token_ids"], [e.ids for e in enc])
    np.testing.assert_array_equal(out["segment_ids"], [e.type_ids for e in enc])
    np.testing.assert_array_equal(out["padding_mask"], [np.array(e.attention_mask, bool) for e in enc])


def test_pair_parity_with_hf_without_truncation(uncased_vocab):
    vocab, path = uncased_vocab
    a, b = HANDMADE[2:8], HANDMADE[8:14]
    out = BertPreprocessor(vocab, sequence_length=128)((a, b))
    ref = hf_tokenizer(path, True)
    ref.enable_padding(length=128, pad_id=0)
    enc = ref.encode_batch(list(zip(a, b)))
    np.testing.assert_array_equal(out["token_ids"], [e.ids for e in enc])
    np.testing.assert_array_equal(out["segment_ids"], [e.type_ids for e in enc])


def test_tokenizer_in_tf_function_and_tf_data(uncased_vocab):
    vocab, path = uncased_vocab
    tokenizer = WordPieceTokenizer(vocab)
    ref = hf_ids(hf_tokenizer(path, True), HANDMADE)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(x):
        return tokenizer(x)

    assert tokenize(tf.constant(HANDMADE)).to_list() == ref
    ds = tf.data.Dataset.from_tensor_slices(HANDMADE).batch(4).map(tokenizer)
    assert [row for batch in ds for row in batch.to_list()] == ref


def test_tokenizer_config_round_trip(cased_vocab):
    vocab, _ = cased_vocab
    tokenizer = WordPieceTokenizer(vocab, lowercase=False, sequence_length=16)
    clone = WordPieceTokenizer.from_config(tokenizer.get_config())
    assert clone.get_config() == tokenizer.get_config()
    np.testing.assert_array_equal(clone(HANDMADE), tokenizer(HANDMADE))


def test_saved_model_runs_with_only_tensorflow_and_tensorflow_text(uncased_vocab, tmp_path):
    vocab, path = uncased_vocab
    preprocessor = BertPreprocessor(vocab, sequence_length=32)

    class Export(tf.Module):
        def __init__(self):
            super().__init__()
            self.preprocessor = preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            return preprocessor(text)

    module = Export()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    served = serve_in_fresh_process(tmp_path / "model", {"text": HANDMADE})  # TF + tensorflow_text only
    ref = hf_tokenizer(path, True)
    ref.enable_truncation(max_length=32)
    ref.enable_padding(length=32, pad_id=0)
    np.testing.assert_array_equal(served["token_ids"], [e.ids for e in ref.encode_batch(HANDMADE)])


def test_build_vocabulary_file_from_text_and_tsv(tmp_path):
    # One build (the learner is slow to start) checks file reading, the
    # vocabulary layout, and that our tokenizer then covers the training text.
    (tmp_path / "a.txt").write_text("the cat sat\n\nthe dog sat\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text("label\tsentence\n1\tThe Cat ran, naïvely!\n", encoding="utf-8")
    lines = []
    vocab = build_vocabulary_file(
        [str(tmp_path / "a.txt"), str(tmp_path / "b.tsv")], str(tmp_path / "out" / "vocab.txt"), 50, log=lines.append
    )
    assert load_vocabulary(tmp_path / "out" / "vocab.txt") == vocab
    assert vocab[: len(RESERVED_TOKENS)] == list(RESERVED_TOKENS)  # [PAD] is id 0
    assert len(vocab) <= 50 and len(set(vocab)) == len(vocab)
    # Lower-cased, accents stripped, punctuation split off: as BERT uncased.
    assert {"t", "h", "e", "c", "a", "r", "n", "v", "i", "l", "y", ",", "!", "##t"} <= set(vocab)
    assert not {"C", "T", "ï", "##ï"} & set(vocab)
    assert lines[0].startswith("Read 3 texts from 2 file(s)")
    # Nothing in the training text is unknown, checked with the HF tokenizer.
    texts = ["the cat sat", "the dog sat", "The Cat ran, naïvely!"]
    ids = hf_ids(hf_tokenizer(tmp_path / "out" / "vocab.txt", True), texts)
    assert all(row and vocab.index("[UNK]") not in row for row in ids)


def test_build_vocab_tool_rejects_other_types(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_vocab.py"), "--input=x.txt", f"--output={tmp_path}/v.txt",
         "--type=unigram"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode != 0
    assert "--type=unigram" in result.stderr and "<wordpiece|bpe|sentencepiece>" in result.stderr


def test_char_tokenizer_names_characters_outside_its_vocabulary():
    tokenizer = CharTokenizer.from_text("abc ")
    assert tokenizer(["ab c"]).to_list() == [[1, 2, 0, 3]]
    with pytest.raises(DataError, match=re.escape("2 character(s) outside this model's 4-character vocabulary: "
                                                  "'z' '€'")):
        tokenizer(["abz €"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the vocabulary"):  # in a graph: asserted
        tf.function(tokenizer)(tf.constant(["abz"]))
