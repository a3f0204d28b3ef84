"""GPT-2 byte-level BPE: ids identical to Hugging Face's GPT-2 tokenizer, in-graph use and export.

The vocabulary is trained here with HF `tokenizers` (no downloads); parity of
the pre-tokenizer and merges holds for any vocabulary and merge list.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tfllm.data import language_modeling as lm_data
from tfllm.tokenizers import BytePairTokenizer
from tfllm.tokenizers.byte_pair import END_OF_TEXT
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.byte_pair import train_byte_pair_vocabulary
from tfllm.tokenizers.char_tokenizer import CharTokenizer

T = pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

HANDMADE = [
    "", " ", "  ", "\n", "a", "Hello world", "Hello  world", "Hello   world ", "  leading", "trailing  ",
    "a \n b", "a\n\nb ", "line one\nline two\r\nthree\tfour", "tab\t\tx \t y",
    "x 's y''s don't DON'T I'll we've they're she'd 'tis", "'s'", "it's 'quoted' text",
    "Héllo wörld, naïve café résumé Ünïcödé ÀÉÎÕÜ", "Straße ﬁnance ＡＢＣ ² ½",
    "日本語のテキスト and 中文字符 mixed漢字text 한국어", "ΣΑΣ σας İstanbul",
    "emoji 🙂👍🏽 🇫🇷 👨‍👩‍👧 ❤️", "ctl\x00\x01\x7f\u200b\ufeff end", "a\x00b \x00", "\ufdd0\x00 noncharacters",
    "a\u00a0b c\u3000d e\u2009f g\u202fh \u2028\u2029 i\x85j \x0bk\x0cl",
    "123 4567 3.14 1,000,000 ١٢٣ ६ ²³", "$5.99 or 50% off #tags @user ~ ^ ` | \\ ... !!! ??",
    "x" * 300, "supercalifragilisticexpialidocious " * 3, "é" * 120, "🙂" * 40,
    f"word{END_OF_TEXT}next {END_OF_TEXT} x", f"{END_OF_TEXT}", f"<|endoftext {END_OF_TEXT}|>",
    "ROMEO:\nBut, soft! what light through yonder window breaks?",
]


def read_lines(path):
    return Path(path).read_text(encoding="utf-8").split("\n")


@pytest.fixture(scope="module")
def corpora():
    sets = {"handmade": HANDMADE}
    sst2 = SHARED / "sst2/dev.tsv"
    if sst2.exists():
        sets["sst2_dev"] = [line.split("\t", 1)[1] for line in read_lines(sst2)[1:] if line]
    shakespeare = SHARED / "tinyshakespeare/input.txt"
    if shakespeare.exists():
        sets["tiny_shakespeare_lines"] = read_lines(shakespeare)
    return sets


@pytest.fixture(scope="module")
def bpe_dir(corpora, tmp_path_factory):
    texts = [t for texts in corpora.values() for t in texts]
    vocab, merges = train_byte_pair_vocabulary(texts, 3000)
    path = tmp_path_factory.mktemp("bpe")
    save_byte_pair_vocabulary(vocab, merges, path)
    return path


def as_lists(ids):
    return ids.to_list() if hasattr(ids, "to_list") else [list(map(int, row)) for row in ids]


def reference_ids(path, texts):
    ref = T.GPT2Tokenizer.from_pretrained(str(path))  # HF `tokenizers` backend
    return ref(list(texts))["input_ids"]


@pytest.mark.parametrize("name", ["handmade", "sst2_dev", "tiny_shakespeare_lines"])
def test_ids_match_hugging_face(bpe_dir, corpora, name):
    if name not in corpora:
        pytest.skip(f"shared data for {name} not found")
    texts = corpora[name]
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt")
    ours = as_lists(tokenizer(tf.constant(texts)))
    ref = reference_ids(bpe_dir, texts)
    mismatches = [(t, a, b) for t, a, b in zip(texts, ours, ref) if a != b]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, first: {mismatches[:3]}"
    assert sum(map(len, ref)) > 0


def test_detokenize_round_trips_bytes(bpe_dir):
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt")
    ids = tokenizer(tf.constant(HANDMADE))
    ids = tf.ragged.constant(as_lists(ids), dtype=tf.int32)
    out = tokenizer.detokenize(ids)
    out = out.numpy().tolist() if hasattr(out, "numpy") else out  # eager calls give Python values
    texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in out]
    assert texts == HANDMADE


def test_tf_data_tf_function_and_config_round_trip(bpe_dir):
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt")
    want = reference_ids(bpe_dir, HANDMADE)
    ds = tf.data.Dataset.from_tensor_slices(HANDMADE).batch(5).map(tokenizer)
    assert [row for batch in ds for row in batch.to_list()] == want
    clone = BytePairTokenizer.from_config(tokenizer.get_config())
    fixed = tf.function(lambda x: clone(x), input_signature=[tf.TensorSpec([None], tf.string)])
    assert fixed(tf.constant(HANDMADE)).to_list() == want


def test_saved_model_runs_with_only_tensorflow_and_tensorflow_text(bpe_dir, tmp_path):
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt", sequence_length=64)

    class Export(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            ids = self.tokenizer(text)
            return {"ids": ids, "text": self.tokenizer.detokenize(ids)}

    module = Export()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    served = serve_in_fresh_process(tmp_path / "model", {"text": HANDMADE})  # TF + tensorflow_text only
    want = [(ids + [0] * 64)[:64] for ids in reference_ids(bpe_dir, HANDMADE)]
    np.testing.assert_array_equal(served["ids"], want)


def test_build_vocab_tool_bpe(tmp_path):
    (tmp_path / "a.txt").write_text("the cat sat on the mat\nthe dog sat on the log\n" * 20, encoding="utf-8")
    run_script("tools/build_vocab.py", "--type=bpe", f"--input={tmp_path}/a.txt", f"--output={tmp_path}/bpe",
               "--vocab_size=300")
    tokenizer = BytePairTokenizer(tmp_path / "bpe/vocab.json", tmp_path / "bpe/merges.txt")
    assert tokenizer.vocabulary_size() <= 300
    texts = ["the cat sat on the log", "A new dog!"]
    assert as_lists(tokenizer(texts)) == reference_ids(tmp_path / "bpe", texts)
    assert len(as_lists(tokenizer(["the cat"]))[0]) == 2  # " cat" was merged into one token


def test_encode_takes_lists_and_eager_calls_share_one_graph(bpe_dir):
    """`encode` of a list == one string at a time == Hugging Face; eager calls of any batch size
    run one graph traced once (eagerly, keras-hub's merge loop retraced on every iteration)."""
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt")
    want = reference_ids(bpe_dir, HANDMADE)
    assert [ids.tolist() for ids in tokenizer.encode(HANDMADE)] == want
    assert [tokenizer.encode(text).tolist() for text in HANDMADE[:6]] == want[:6]
    assert as_lists(tokenizer(tf.constant(HANDMADE[:3]))) == want[:3]
    assert tokenizer._compiled().experimental_get_tracing_count() == 1

    # token_stream hands all documents to `encode` at once, for both tokenizers.
    end = tokenizer.end_token_id
    stream = lm_data.token_stream(HANDMADE[5:8], tokenizer.encode, separator_id=end)
    assert stream.tolist() == want[5] + [end] + want[6] + [end] + want[7]
    chars = CharTokenizer.from_text("abc \n")
    assert lm_data.token_stream(["ab", "", "c a"], chars.encode, separator_id=9).tolist() == [2, 3, 9, 9, 4, 1, 2]
    assert chars.encode("cab").tolist() == [4, 2, 3]  # Sorted: "\n", " ", "a", "b", "c".


def test_tf_data_over_tiny_shakespeare_traces_once_and_matches_hugging_face(bpe_dir, corpora, caplog):
    """As tools/bench/bpe_speed.py tokenizes: `batch(n).map(tokenize)` of Tiny Shakespeare's documents
    (batches of two sizes) gives Hugging Face's ids, tracing the tokenizer once and logging no retracing."""
    if "tiny_shakespeare_lines" not in corpora:
        pytest.skip("shared data for tiny_shakespeare not found")
    documents = "\n".join(corpora["tiny_shakespeare_lines"]).split("\n\n")[:3000]
    tokenizer = BytePairTokenizer(bpe_dir / "vocab.json", bpe_dir / "merges.txt")
    traces = []

    def tokenize(text):
        traces.append(text.shape)
        return tokenizer.tokenize(text)

    with caplog.at_level("WARNING"):
        ds = tf.data.Dataset.from_tensor_slices(documents).batch(1024).map(tokenize)  # 1024, 1024, 952
        ours = [row for batch in ds for row in batch.to_list()]
        again = tokenizer._compiled()
        assert [as_lists(again(tf.constant(documents[:n], tf.string))) for n in (7, 1, 0)] == [ours[:7], ours[:1], []]
    assert len(traces) == 1 and again.experimental_get_tracing_count() == 1
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    assert ours == reference_ids(bpe_dir, documents)
