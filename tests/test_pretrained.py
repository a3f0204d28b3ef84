"""from_pretrained: Hugging Face and Google BERT / GPT-2 checkpoints load with the reference's numbers.

Reference models are small, randomly initialised `transformers` (PyTorch CPU)
models whose every weight is perturbed (so LayerNorm and bias mappings are
exercised too), saved with `save_pretrained`; no downloads.
"""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import keras
import tensorflow as tf
import tokenizers as hf
import torch
import transformers as T
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tests.test_tokenizers import HANDMADE
from tfllm.convert import ConversionError
from tfllm.convert.hf_bert import bert_config_from_hf
from tfllm.convert.hf_gpt2 import gpt_config_from_hf
from tfllm.errors import ConfigError
from tfllm.export import export_classifier
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertPretrainer
from tfllm.models import BertSpanQA
from tfllm.models import BertTokenClassifier
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import load as load_folder
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.pretrained import detect_format
from tfllm.models.pretrained import save_pretrained
from tfllm.tokenizers import load_tokenizer
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.byte_pair import train_byte_pair_vocabulary
from tfllm.training.init_checkpoint import restore_backbone

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-4
BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)
GPT2 = dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)


def perturb(model, seed=0):
    """Every weight random (LayerNorm scales around 1), so no mapping error hides behind zeros/ones."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            p.copy_(1.0 + noise if "LayerNorm.weight" in name or ".ln_" in name else noise)
    return model.eval()


def sentences(sst2_dir=None):
    texts = HANDMADE[2:]
    dev = REPO.parent / "shared/data/sst2/dev.tsv"
    if dev.exists():
        texts = texts + [line.split("\t", 1)[1].rstrip("\n") for line in open(dev, encoding="utf-8")][1:200]
    return texts


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    trainer = hf.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(sentences() * 3, vocab_size=400,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(t + "\n" for t, _ in sorted(trainer.get_vocab().items(), key=lambda kv: kv[1])))
    return path


@pytest.fixture(scope="module")
def hf_bert_dirs(vocab_file, tmp_path_factory):
    """{class name: folder} for BertModel, BertForPreTraining, BertForSequenceClassification (+ tokenizer)."""
    vocab_size = len(vocab_file.read_text().splitlines())
    dirs = {}
    for seed, name in enumerate(["BertModel", "BertForPreTraining", "BertForSequenceClassification"]):
        config = T.BertConfig(vocab_size=vocab_size, num_labels=3, **BERT)
        model = perturb(getattr(T, name)(config), seed)
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        T.BertTokenizer(vocab=str(vocab_file), do_lower_case=True).save_pretrained(path)
        dirs[name] = path
    return dirs


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    vocab, merges = train_byte_pair_vocabulary(sentences() * 3, 300)
    path = tmp_path_factory.mktemp("bpe")
    save_byte_pair_vocabulary(vocab, merges, path)
    return path, len(vocab)


@pytest.fixture(scope="module")
def hf_gpt2_dir(bpe_files, tmp_path_factory):
    bpe_dir, vocab_size = bpe_files
    model = perturb(T.GPT2LMHeadModel(T.GPT2Config(vocab_size=vocab_size, **GPT2)))
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path)
    T.GPT2Tokenizer.from_pretrained(str(bpe_dir)).save_pretrained(path)
    return path


def bert_batch(vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, (2, 11)).astype("int32")
    mask = np.ones((2, 11), bool)
    mask[1, 7:] = False
    ids[~mask] = 0
    seg = np.zeros((2, 11), "int32")
    seg[:, 6:] = 1
    ours = {"token_ids": ids, "segment_ids": seg, "padding_mask": mask}
    ref = dict(input_ids=torch.tensor(ids, dtype=torch.long), token_type_ids=torch.tensor(seg, dtype=torch.long),
               attention_mask=torch.tensor(mask.astype("int64")))
    return ours, ref


def as_lists(ids):
    """Token ids as nested lists (tokenizers return ragged tensors, or lists when called eagerly)."""
    return ids.to_list() if hasattr(ids, "to_list") else [list(map(int, row)) for row in ids]


def max_diff(a, b, mask=None):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a[mask] - b[mask]).max() if mask is not None else np.abs(a - b).max())


def check_bert_model(model_dir, tfllm_model, ref_model):
    """Compare a tfllm Bert/BertPretrainer/BertClassifier with the HF model of the same weights."""
    ours, ref = bert_batch(ref_model.config.vocab_size)
    with torch.no_grad():
        out = ref_model(**ref)
    mask = ours["padding_mask"]  # padded positions are not compared (implementation-defined)
    if isinstance(tfllm_model, BertPretrainer):
        positions = np.tile(np.arange(11, dtype="int32"), (2, 1))
        got = tfllm_model({**ours, "masked_lm_positions": positions})
        assert max_diff(got["mlm_logits"], out.prediction_logits, mask) <= ATOL
        assert max_diff(got["nsp_logits"], out.seq_relationship_logits) <= ATOL
    elif isinstance(tfllm_model, BertClassifier):
        assert max_diff(tfllm_model(ours), out.logits) <= ATOL
    else:
        got = tfllm_model(ours)
        assert max_diff(got["sequence_output"], out.last_hidden_state, mask) <= ATOL
        assert max_diff(got["pooled_output"], out.pooler_output) <= ATOL


@pytest.mark.parametrize("name,cls", [("BertModel", Bert), ("BertForPreTraining", BertPretrainer),
                                      ("BertForSequenceClassification", BertClassifier)])
def test_hf_bert_matches_transformers(hf_bert_dirs, name, cls):
    path = hf_bert_dirs[name]
    assert detect_format(path) == "hf"
    ref = getattr(T, name).from_pretrained(path).eval()
    check_bert_model(path, cls.from_pretrained(path), ref)
    if name != "BertModel":  # the backbone alone loads from a checkpoint with heads (heads logged, not loaded)
        check_bert_model(path, Bert.from_pretrained(path), T.BertModel.from_pretrained(path).eval())


@pytest.mark.parametrize("cls,kwargs", [(BertTokenClassifier, dict(num_classes=5)), (BertSpanQA, {})])
def test_tagger_and_span_heads_on_a_published_encoder_round_trip(hf_bert_dirs, tmp_path, cls, kwargs):
    """An HF BertModel folder gives the head a transformers-exact encoder; save/load keeps every output."""
    path = hf_bert_dirs["BertModel"]
    model = cls.from_pretrained(path, **kwargs)
    check_bert_model(path, model.backbone, T.BertModel.from_pretrained(path).eval())
    features, _ = bert_batch(model.backbone.vocabulary_size)
    model.save_pretrained(tmp_path / "saved")
    again = cls.from_pretrained(tmp_path / "saved")
    assert type(again) is cls and again.get_config() == {**model.get_config(), "name": again.name}
    before, after = model(features), again(features)
    for name in (before if isinstance(before, dict) else [None]):
        a, b = (before[name], after[name]) if name else (before, after)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if cls is BertTokenClassifier:
        with pytest.raises(ConversionError, match="pass num_classes="):
            cls.from_pretrained(path)


def test_sharded_safetensors(hf_bert_dirs, tmp_path):
    ref = T.BertForPreTraining.from_pretrained(hf_bert_dirs["BertForPreTraining"]).eval()
    ref.save_pretrained(tmp_path, max_shard_size="40KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    check_bert_model(tmp_path, BertPretrainer.from_pretrained(tmp_path), ref)


def test_hf_gpt2_matches_transformers_and_has_its_tokenizer(hf_gpt2_dir):
    ref = T.GPT2LMHeadModel.from_pretrained(hf_gpt2_dir).eval()
    lm = GptCausalLM.from_pretrained(hf_gpt2_dir)
    ids = np.random.default_rng(0).integers(0, ref.config.vocab_size, (2, 13)).astype("int32")
    with torch.no_grad():
        out = ref(input_ids=torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
    logits = lm({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)})
    assert max_diff(logits, out.logits) <= ATOL
    hidden = Gpt.from_pretrained(hf_gpt2_dir)({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)})
    assert max_diff(hidden, out.hidden_states[-1]) <= ATOL
    hf_tok = T.GPT2Tokenizer.from_pretrained(hf_gpt2_dir)
    texts = sentences()
    assert as_lists(lm.tokenizer(texts)) == [hf_tok(t)["input_ids"] for t in texts]


def google_checkpoint(hf_dir, out_dir, vocab_file):
    """Write a Google-format BERT checkpoint (original variable names) from a HF BertForPreTraining's weights."""
    tensors = load_file(str(hf_dir / "model.safetensors"))
    config = json.loads((hf_dir / "config.json").read_text())
    variables = {}
    for name, value in tensors.items():
        name = name.replace("bert.", "bert/", 1)
        if name.startswith("cls.predictions.decoder"):
            continue
        google = {"cls.predictions.bias": "cls/predictions/output_bias",
                  "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
                  "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}.get(name)
        if google is None:
            parts = name.replace(".", "/").split("/")
            parts = [f"layer_{p}" if p.isdigit() else p for p in parts]
            parts = [p for p in parts if p != "layer"] if "encoder" in parts else parts
            leaf = parts[-1]
            if "LayerNorm" in parts:
                parts[-1] = {"weight": "gamma", "bias": "beta"}[leaf]
            elif "embeddings" in parts and leaf == "weight":
                parts = parts[:-1]
            elif leaf == "weight":
                parts[-1], value = "kernel", value.T
            google = "/".join(parts)
        variables[google] = value
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = [tf.compat.v1.get_variable(n, initializer=tf.constant(v)) for n, v in variables.items()]
        tf.compat.v1.get_variable("global_step", initializer=tf.constant(7, tf.int64))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(out_dir / "bert_model.ckpt"), write_meta_graph=False)
    keep = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
            "type_vocab_size", "initializer_range"]
    (out_dir / "bert_config.json").write_text(json.dumps({k: config[k] for k in keep}))
    (out_dir / "vocab.txt").write_text(vocab_file.read_text())
    return sorted(variables), len(tf_vars)


def test_google_checkpoint_matches_transformers(hf_bert_dirs, vocab_file, tmp_path):
    names, _ = google_checkpoint(hf_bert_dirs["BertForPreTraining"], tmp_path, vocab_file)
    assert "bert/encoder/layer_0/attention/self/query/kernel" in names
    assert "cls/predictions/transform/LayerNorm/gamma" in names
    assert detect_format(tmp_path) == "google"
    ref = T.BertForPreTraining.from_pretrained(hf_bert_dirs["BertForPreTraining"]).eval()
    check_bert_model(tmp_path, BertPretrainer.from_pretrained(tmp_path), ref)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.bert_lowercase  # no upper-case words in the vocabulary: uncased
    # Convert with the tool, then load the tfllm folder: same numbers, same tokenizer.
    dst = tmp_path / "converted"
    run_script("tools/convert_checkpoint.py", "--from=google", "--model=bert", tmp_path, dst)
    assert detect_format(dst) == "tfllm" and (dst / "model.weights.h5").exists() and (dst / "vocab.txt").exists()
    check_bert_model(dst, BertPretrainer.from_pretrained(dst), ref)
    reference = T.BertModel.from_pretrained(hf_bert_dirs["BertForPreTraining"]).eval()
    check_bert_model(dst, Bert.from_pretrained(dst), reference)


@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenizer_from_hf_folder_matches_transformers(vocab_file, tmp_path, lowercase):
    # A cased vocabulary: add the cased/accented words of the texts so casing matters.
    vocab = vocab_file.read_text().splitlines()
    texts = sentences()
    if not lowercase:
        vocab += sorted({w for t in texts for w in t.split() if w.isalpha() and w not in vocab})
    (tmp_path / "v.txt").write_text("".join(t + "\n" for t in vocab))
    T.BertTokenizer(vocab=str(tmp_path / "v.txt"), do_lower_case=lowercase).save_pretrained(tmp_path / "tok")
    ref = T.BertTokenizer.from_pretrained(tmp_path / "tok")
    ours = load_tokenizer(tmp_path / "tok")  # only tokenizer.json + tokenizer_config.json in the folder
    assert ours.bert_lowercase == lowercase
    got = as_lists(ours(texts))
    want = [ref(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert got == want


def test_fine_tune_then_export_serves_same_outputs(hf_bert_dirs, tmp_path):
    path = hf_bert_dirs["BertForSequenceClassification"]
    model = BertClassifier.from_pretrained(path)
    preprocessor = BertPreprocessor.from_pretrained(path, sequence_length=16)
    texts = ["a gorgeous , witty , seductive movie .", "the story is bland and tired ."]
    features = preprocessor(texts)
    ref = T.BertForSequenceClassification.from_pretrained(path).eval()
    hf_tok = T.BertTokenizer.from_pretrained(path)
    enc = hf_tok(texts, padding="max_length", truncation=True, max_length=16, return_tensors="pt")
    np.testing.assert_array_equal(features["token_ids"], enc["input_ids"].numpy())
    with torch.no_grad():
        assert max_diff(model(features), ref(**enc).logits) <= ATOL
    # One optimizer step moves the weights and lowers the loss on the batch. Without dropout: a step
    # on a dropout-masked loss need not lower the unmasked one (it failed so in a full run, 2026-12-06).
    optimizer = keras.optimizers.Adam(1e-3)
    labels = tf.constant([1, 0])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(loss_fn(labels, model(features, training=False)))
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(features, training=False))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    assert float(loss_fn(labels, model(features, training=False))) < before
    # Export, then serve in a process that imports only tensorflow + tensorflow_text.
    export = export_classifier(preprocessor, model, str(tmp_path / "export"), "sst2", 1)
    served = serve_in_fresh_process(export, {"text": texts})
    want = tf.nn.softmax(model(features, training=False)).numpy()
    np.testing.assert_allclose(served["probabilities"], want, atol=1e-5)
    # save_pretrained -> from_pretrained gives the fine-tuned model back.
    model.save_pretrained(tmp_path / "tuned", tokenizer=preprocessor)
    again = BertClassifier.from_pretrained(tmp_path / "tuned")
    np.testing.assert_allclose(again(features), model(features), atol=1e-6)
    assert as_lists(load_tokenizer(tmp_path / "tuned")(texts)) == as_lists(preprocessor.tokenizer(texts))


def test_gpt2_fine_tune_step_and_round_trip(hf_gpt2_dir, tmp_path):
    lm = GptCausalLM.from_pretrained(hf_gpt2_dir, dropout=0.0)
    ids = tf.constant(as_lists(lm.tokenizer(["ROMEO: what light through yonder window breaks ."])))
    x = {"token_ids": ids[:, :-1], "padding_mask": tf.ones_like(ids[:, :-1], bool)}
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(1e-3)
    before = float(loss_fn(ids[:, 1:], lm(x)))
    with tf.GradientTape() as tape:
        loss = loss_fn(ids[:, 1:], lm(x, training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, lm.trainable_variables), lm.trainable_variables))
    assert float(loss_fn(ids[:, 1:], lm(x))) < before
    # GptCausalLM saves through the module function.
    save_pretrained(lm, tmp_path / "tuned")
    again = GptCausalLM.from_pretrained(tmp_path / "tuned")
    np.testing.assert_allclose(again(x), lm(x), atol=1e-6)
    assert as_lists(again.tokenizer(["hello world"])) == as_lists(lm.tokenizer(["hello world"]))


def test_convert_tool_hf_gpt2(hf_gpt2_dir, tmp_path):
    run_script("tools/convert_checkpoint.py", "--from=hf", "--model=gpt2", hf_gpt2_dir, tmp_path / "out")
    ids = np.arange(1, 9, dtype="int32")[None]
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    np.testing.assert_allclose(GptCausalLM.from_pretrained(tmp_path / "out")(x),
                               GptCausalLM.from_pretrained(hf_gpt2_dir)(x), atol=1e-6)
    assert (tmp_path / "out/vocab.json").exists() and (tmp_path / "out/merges.txt").exists()


def test_folders_on_a_filesystem_only_tf_io_gfile_reaches(hf_bert_dirs, hf_gpt2_dir, tmp_path, monkeypatch):
    """Published folders read from, and tfllm folders written to, ram:// (TensorFlow's in-memory filesystem), as
    from and to gs:// on a TPU: safetensors weights, vocab.txt, vocab.json + merges.txt, config.json. A local
    `open("ram://...")` would read nothing there, and would write to a folder ./ram:/... instead."""
    monkeypatch.chdir(tmp_path)
    root = f"ram://pretrained-{os.getpid()}-{tmp_path.name}"
    for name, local in [("bert", hf_bert_dirs["BertForSequenceClassification"]), ("gpt2", hf_gpt2_dir)]:
        for f in local.iterdir():
            tf.io.gfile.makedirs(f"{root}/{name}")
            tf.io.gfile.copy(str(f), f"{root}/{name}/{f.name}")
    texts = ["a gorgeous , witty , seductive movie .", "ROMEO: what light through yonder window breaks ."]
    bert = BertClassifier.from_pretrained(f"{root}/bert")
    features = BertPreprocessor.from_pretrained(f"{root}/bert", sequence_length=16)(texts)
    local_features = BertPreprocessor.from_pretrained(hf_bert_dirs["BertForSequenceClassification"],
                                                      sequence_length=16)(texts)
    np.testing.assert_array_equal(features["token_ids"], local_features["token_ids"])
    local_bert = BertClassifier.from_pretrained(hf_bert_dirs["BertForSequenceClassification"])
    np.testing.assert_array_equal(bert(features), local_bert(features))
    lm = GptCausalLM.from_pretrained(f"{root}/gpt2")
    local_lm = GptCausalLM.from_pretrained(hf_gpt2_dir)
    ids = tf.constant(as_lists(local_lm.tokenizer(texts[1:])))
    assert as_lists(lm.tokenizer(texts[1:])) == as_lists(ids)
    x = {"token_ids": ids, "padding_mask": tf.ones_like(ids, bool)}
    np.testing.assert_array_equal(lm(x), local_lm(x))
    # tfllm's own folders, BPE files included, written there and read back.
    save_pretrained(lm, f"{root}/tuned")
    assert sorted(tf.io.gfile.listdir(f"{root}/tuned")) == ["config.json", "merges.txt", "model.weights.h5",
                                                            "vocab.json"]
    again = load_folder(f"{root}/tuned").model
    np.testing.assert_array_equal(again(x), lm(x))
    assert as_lists(again.tokenizer(texts)) == as_lists(local_lm.tokenizer(texts))
    assert not list(tmp_path.iterdir()), "written to a local folder instead"
    tf.io.gfile.rmtree(root)


def copy_dir(src, dst, skip=()):
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in skip:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("field,value,cls", [
    ("position_embedding_type", "relative_key", Bert),
    ("hidden_act", "silu", Bert),
    ("model_type", "xlnet", Bert),
    ("activation_function", "swish", GptCausalLM),
    ("scale_attn_by_inverse_layer_idx", True, GptCausalLM),
])
def test_unsupported_config_is_refused_naming_the_field(hf_bert_dirs, hf_gpt2_dir, tmp_path, field, value, cls):
    src = hf_gpt2_dir if cls is GptCausalLM else hf_bert_dirs["BertModel"]
    path = copy_dir(src, tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(ConversionError, match=f"{field}={value!r}"):
        cls.from_pretrained(path)


DROP = object()  # the field is removed from config.json


@pytest.mark.parametrize("cls,field,value,message", [
    (Bert, "hidden_size", 0, "hidden_size=0 is not a valid size (expected a positive integer)"),
    (Bert, "hidden_size", -32, "hidden_size=-32 is not a valid size"),
    (Bert, "hidden_size", "32", "hidden_size='32' is not a valid size"),
    (Bert, "hidden_size", DROP, "hidden_size is missing (expected a positive integer)"),
    (Bert, "num_hidden_layers", 0, "num_hidden_layers=0 is not a valid size"),
    (Bert, "num_hidden_layers", 1.5, "num_hidden_layers=1.5 is not a valid size"),
    (Bert, "num_attention_heads", 0, "num_attention_heads=0 is not a valid size"),
    (Bert, "num_attention_heads", 5, "num_attention_heads=5 does not divide hidden_size=32"),
    (Bert, "intermediate_size", -1, "intermediate_size=-1 is not a valid size"),
    (Bert, "vocab_size", None, "vocab_size=None is not a valid size"),
    (Bert, "max_position_embeddings", 0, "max_position_embeddings=0 is not a valid size"),
    (Bert, "type_vocab_size", 0, "type_vocab_size=0 is not a valid size"),
    (Bert, "hidden_dropout_prob", 1.5, "hidden_dropout_prob=1.5 is not valid (expected a number in [0, 1))"),
    (Bert, "layer_norm_eps", "tiny", "layer_norm_eps='tiny' is not valid (expected a positive number)"),
    (GptCausalLM, "n_embd", 0, "n_embd=0 is not a valid size"),
    (GptCausalLM, "n_embd", DROP, "n_embd is missing"),
    (GptCausalLM, "n_layer", -2, "n_layer=-2 is not a valid size"),
    (GptCausalLM, "n_head", 3, "n_head=3 does not divide n_embd=32"),
    (GptCausalLM, "n_head", True, "n_head=True is not a valid size"),
    (GptCausalLM, "n_positions", 0, "n_positions=0 is not a valid size"),
    (GptCausalLM, "vocab_size", "300", "vocab_size='300' is not a valid size"),
    (GptCausalLM, "n_inner", 0, "n_inner=0 is not a valid size"),
    (GptCausalLM, "resid_pdrop", -0.1, "resid_pdrop=-0.1 is not valid (expected a number in [0, 1))"),
])
def test_bad_config_values_are_named_with_their_file(hf_bert_dirs, hf_gpt2_dir, tmp_path, cls, field, value,
                                                     message):
    src = hf_gpt2_dir if cls is GptCausalLM else hf_bert_dirs["BertModel"]
    path = copy_dir(src, tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert field in config or value is not DROP
    config = {k: v for k, v in config.items() if k != field} if value is DROP else {**config, field: value}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError) as info:
        cls.from_pretrained(path)
    assert str(info.value).startswith(f"{path / 'config.json'}: {message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_broken_weight_files_are_named(hf_bert_dirs, tmp_path):
    src = hf_bert_dirs["BertModel"]
    blob = (src / "model.safetensors").read_bytes()
    for name, content, reason in [("garbage", b"not a safetensors file at all", "header too large"),
                                  ("truncated", blob[: len(blob) // 2], "incomplete metadata"),
                                  ("empty", b"", "header too small")]:
        path = copy_dir(src, tmp_path / name, skip=("model.safetensors",))
        (path / "model.safetensors").write_bytes(content)
        with pytest.raises(ConversionError, match=f"^{path / 'model.safetensors'}: not a readable safetensors "
                                                  f"file \\(.*{reason}.*\\)$"):
            Bert.from_pretrained(path)
    path = copy_dir(src, tmp_path / "index", skip=("model.safetensors",))
    (path / "model.safetensors.index.json").write_text('{"weight_map": {"a": "model-1.safetensors"')
    with pytest.raises(ConversionError, match=f"^{path / 'model.safetensors.index.json'}: not valid JSON"):
        Bert.from_pretrained(path)


def test_broken_tfllm_config_is_a_config_error_naming_the_file(hf_bert_dirs, tmp_path):
    folder = tmp_path / "saved"
    Bert.from_pretrained(hf_bert_dirs["BertModel"]).save_pretrained(folder)
    config_file = folder / "config.json"
    good = json.loads(config_file.read_text())
    assert load_folder(folder).model.num_layers == 2  # the folder loads before it is broken
    model_config = good["model"]["config"]
    cases = [
        ('{"tfllm_class": "Bert", "model": ', "not valid JSON (Expecting value at line 1 column 34)"),
        (b"\xff\xfe{}", "not valid JSON (not UTF-8 text)"),
        ("[1, 2]", "expected a JSON object ({...}), found a list"),
        (json.dumps({"model": good["model"]}), "not a tfllm config (no tfllm_class/model entries)"),
        (json.dumps({**good, "model": "Bert"}), "model is not a Keras serialization"),
        (json.dumps({**good, "model": {**good["model"], "config": {k: v for k, v in model_config.items()
                                                                    if k != "vocabulary_size"}}}),
         "cannot rebuild Bert from its model config"),
    ]
    for content, message in cases:
        if isinstance(content, bytes):
            config_file.write_bytes(content)
        else:
            config_file.write_text(content)
        # Without tfllm_class, from_pretrained does not take the folder for a tfllm one (its own error).
        loaders = (load_folder,) if "tfllm_class" in message else (load_folder, Bert.from_pretrained)
        for load in loaders:
            with pytest.raises(ConfigError) as info:
                load(folder)
            assert str(info.value).startswith(f"{config_file}: {message}"), (content, str(info.value))
            assert "\n" not in str(info.value)


def test_missing_and_unexpected_weights_are_named(hf_bert_dirs, tmp_path):
    tensors = load_file(str(hf_bert_dirs["BertModel"] / "model.safetensors"))
    path = copy_dir(hf_bert_dirs["BertModel"], tmp_path / "missing")
    save_file({k: v for k, v in tensors.items() if k != "encoder.layer.1.output.dense.bias"},
              str(path / "model.safetensors"))
    with pytest.raises(ConversionError, match="missing weight 'encoder.layer.1.output.dense.bias'"):
        Bert.from_pretrained(path)
    path = copy_dir(hf_bert_dirs["BertModel"], tmp_path / "extra")
    save_file({**tensors, "encoder.layer.2.output.dense.bias": tensors["encoder.layer.1.output.dense.bias"]},
              str(path / "model.safetensors"))
    with pytest.raises(ConversionError, match="unexpected weights.*encoder.layer.2.output.dense.bias"):
        Bert.from_pretrained(path)
    with pytest.raises(ConversionError, match="pass num_classes="):
        BertClassifier.from_pretrained(hf_bert_dirs["BertModel"])
    with pytest.raises(FileNotFoundError, match="Looked for: tfllm.*Hugging Face.*Google BERT"):
        Bert.from_pretrained(tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pytorch_bin_only_with_weights_only(hf_bert_dirs, tmp_path):
    src = hf_bert_dirs["BertModel"]
    ref = T.BertModel.from_pretrained(src).eval()
    path = copy_dir(src, tmp_path / "bin", skip=("model.safetensors",))
    torch.save(ref.state_dict(), path / "pytorch_model.bin")
    check_bert_model(path, Bert.from_pretrained(path), ref)
    evil = copy_dir(src, tmp_path / "evil", skip=("model.safetensors",))
    with open(evil / "pytorch_model.bin", "wb") as f:
        pickle.dump({"embeddings.word_embeddings.weight": _Evil()}, f)
    with pytest.raises(ConversionError, match="weights_only=True"):
        Bert.from_pretrained(evil)


def test_restore_backbone_accepts_pretrained_folders(hf_bert_dirs, tmp_path):
    path = hf_bert_dirs["BertForSequenceClassification"]
    loaded = Bert.from_pretrained(path)
    backbone = Bert.from_config(loaded.get_config())
    restore_backbone(backbone, str(path))
    ours, _ = bert_batch(loaded.vocabulary_size)
    np.testing.assert_array_equal(backbone(ours)["pooled_output"], loaded(ours)["pooled_output"])
    wrong = Bert.from_config({**loaded.get_config(), "intermediate_dim": 40})
    with pytest.raises(ValueError, match="intermediate_dim"):
        restore_backbone(wrong, str(path))


def _bert_config(layers, hidden, heads, vocab=30522, **extra):
    return dict(model_type="bert", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                num_attention_heads=heads, intermediate_size=4 * hidden, hidden_act="gelu",
                max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                position_embedding_type="absolute", **extra)


# The config.json fields of published checkpoints (as documented on their model cards / configs).
PUBLISHED_BERT = {
    "bert-base-uncased": (_bert_config(12, 768, 12), "bert_base"),
    "bert-large-uncased": (_bert_config(24, 1024, 16), "bert_large"),
    "bert-base-cased": (_bert_config(12, 768, 12, vocab=28996), None),
    "bert-base-multilingual-cased": (_bert_config(12, 768, 12, vocab=119547), None),
    "bert-base-chinese": (_bert_config(12, 768, 12, vocab=21128), None),
    "google/bert_uncased_L-2_H-128_A-2": (_bert_config(2, 128, 2), "bert_tiny"),
    "google/bert_uncased_L-4_H-256_A-4": (_bert_config(4, 256, 4), "bert_mini"),
    "google/bert_uncased_L-4_H-512_A-8": (_bert_config(4, 512, 8), "bert_small"),
    "google/bert_uncased_L-8_H-512_A-8": (_bert_config(8, 512, 8), "bert_medium"),
    "sentence-transformers/all-MiniLM-L6-v2": (_bert_config(6, 384, 12), None),
    "microsoft/MiniLM-L12-H384-uncased": (_bert_config(12, 384, 12), None),
}
PUBLISHED_GPT2 = {
    "gpt2": (768, 12, 12, "gpt2"), "gpt2-medium": (1024, 24, 16, "gpt2_medium"),
    "gpt2-large": (1280, 36, 20, "gpt2_large"), "gpt2-xl": (1600, 48, 25, "gpt2_xl"), "distilgpt2": (768, 6, 12, None),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_BERT))
def test_published_bert_configs_map(name):
    config, preset = PUBLISHED_BERT[name]
    kwargs = bert_config_from_hf(config, name)
    if preset:
        assert {k: kwargs[k] for k in Bert.presets[preset]} == Bert.presets[preset]


@pytest.mark.parametrize("name", sorted(PUBLISHED_GPT2))
def test_published_gpt2_configs_map(name):
    hidden, layers, heads, preset = PUBLISHED_GPT2[name]
    config = dict(model_type="gpt2", vocab_size=50257, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=1024,
                  n_ctx=1024, n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                  resid_pdrop=0.1, scale_attn_weights=True, tie_word_embeddings=True)
    kwargs = gpt_config_from_hf(config, name)
    assert kwargs["activation"] == "gelu_approximate"
    if preset:
        assert {k: kwargs[k] for k in Gpt.presets[preset]} == Gpt.presets[preset]
