"""RoBERTa, DistilBERT and ELECTRA (discriminator) checkpoints load as `Bert` with transformers' numbers.

Reference models are tiny random `transformers` models (every weight
perturbed, as in test_pretrained.py) saved with `save_pretrained`; the
RoBERTa tokenizer is a byte-level BPE trained on SST-2 sentences, saved by
transformers' `RobertaTokenizer`. No downloads.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import tensorflow as tf
import torch
import transformers as T

from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tests.test_pretrained import copy_dir
from tests.test_pretrained import max_diff
from tests.test_pretrained import perturb
from tests.test_pretrained import sentences
from tfllm.convert import ConversionError
from tfllm.convert.hf_encoders import encoder_converter
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertMaskedLM
from tfllm.models import ElectraDiscriminator
from tfllm.models import RobertaPreprocessor
from tfllm.models import load as load_folder
from tfllm.models.bert.preprocessors import preprocessor_from_pretrained
from tfllm.tokenizers import load_tokenizer
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.byte_pair import train_byte_pair_vocabulary

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ATOL = 1e-4
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
SIZE = dict(num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
# (transformers class, config) of each reference model. RoBERTa as published: one token type,
# positions past pad_token_id=1 (66 rows: 64 positions + the offset), LayerNorm eps 1e-5.
MODELS = {
    "RobertaModel": "roberta", "RobertaForMaskedLM": "roberta", "RobertaForSequenceClassification": "roberta",
    "DistilBertModel": "distilbert", "DistilBertForSequenceClassification": "distilbert",
    "ElectraForPreTraining": "electra",
}


def config(family, vocab_size):
    if family == "roberta":
        return T.RobertaConfig(vocab_size=vocab_size, hidden_size=32, max_position_embeddings=66, type_vocab_size=1,
                               layer_norm_eps=1e-5, num_labels=3, **SIZE)
    if family == "distilbert":  # sinusoidal positions: a fixed table the checkpoint stores
        return T.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                  max_position_embeddings=64, sinusoidal_pos_embds=True, num_labels=3)
    return T.ElectraConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32, max_position_embeddings=64,
                           **SIZE)


def sst2_lines(n):
    return [line.rstrip("\n").split("\t", 1)[1] for line in open(DATA / "sst2/dev.tsv", encoding="utf-8")][1:n + 1]


def mrpc_pairs(n):
    rows = [line.rstrip("\n").split("\t") for line in open(DATA / "glue/MRPC/dev.tsv", encoding="utf-8-sig")][1:n + 1]
    return [r[3] for r in rows], [r[4] for r in rows]


def write_roberta_tokenizer(tmp_path_factory):
    """A RoBERTa tokenizer folder as transformers writes it (tokenizer.json + tokenizer_config.json)."""
    if not (DATA / "sst2/dev.tsv").exists() or not (DATA / "glue/MRPC/dev.tsv").exists():
        pytest.skip("shared SST-2 / MRPC data not found")
    vocab, merges = train_byte_pair_vocabulary(sentences() * 2 + mrpc_pairs(300)[0], 500,
                                               special_tokens=ROBERTA_SPECIALS)
    files = tmp_path_factory.mktemp("roberta_bpe")
    save_byte_pair_vocabulary(vocab, merges, files)
    path = tmp_path_factory.mktemp("roberta_tokenizer")
    T.RobertaTokenizer.from_pretrained(str(files)).save_pretrained(path)
    return path


def write_hf_model(name, tokenizer_dir, path, seed=0):
    """A perturbed random transformers `name` model saved in `path` (RoBERTa: with the tokenizer beside)."""
    family = MODELS[name]
    vocab_size = len(json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"])
    perturb(getattr(T, name)(config(family, vocab_size)), seed).save_pretrained(path)
    if family == "roberta":
        for f in tokenizer_dir.iterdir():
            (path / f.name).write_bytes(f.read_bytes())
    return path


@pytest.fixture(scope="module")
def roberta_tokenizer_dir(tmp_path_factory):
    return write_roberta_tokenizer(tmp_path_factory)


@pytest.fixture(scope="module")
def hf_dirs(roberta_tokenizer_dir, tmp_path_factory):
    """{transformers class name: saved folder} (RoBERTa folders with the tokenizer beside)."""
    return {name: write_hf_model(name, roberta_tokenizer_dir, tmp_path_factory.mktemp(name), seed)
            for seed, name in enumerate(MODELS)}


def padded_batch(vocab_size, pad_id):
    """Two rows of 11 ids, the second padded after 7 (with the family's pad id, as its tokenizer pads)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab_size, (2, 11)).astype("int32")
    mask = np.ones((2, 11), bool)
    mask[1, 7:] = False
    ids[~mask] = pad_id
    ours = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    ref = dict(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask.astype("int64")))
    return ours, ref


# (transformers class, tfllm class, what to compare: tfllm output -> transformers output)
CASES = [
    ("RobertaModel", Bert, {"sequence_output": "last_hidden_state", "pooled_output": "pooler_output"}),
    ("RobertaForMaskedLM", BertMaskedLM, {None: "logits"}),
    ("RobertaForSequenceClassification", BertClassifier, {None: "logits"}),
    ("DistilBertModel", Bert, {"sequence_output": "last_hidden_state"}),
    ("DistilBertForSequenceClassification", BertClassifier, {None: "logits"}),
    ("ElectraForPreTraining", ElectraDiscriminator, {None: "logits"}),
]


@pytest.mark.parametrize("name,cls,outputs", CASES, ids=[c[0] for c in CASES])
def test_hidden_states_and_heads_match_transformers(hf_dirs, name, cls, outputs):
    path = hf_dirs[name]
    ref_model = getattr(T, name).from_pretrained(path).eval()
    model = cls.from_pretrained(path)
    ours, ref = padded_batch(ref_model.config.vocab_size, ref_model.config.pad_token_id)
    positions = {"masked_lm_positions": np.tile(np.arange(11, dtype="int32"), (2, 1))} if cls is BertMaskedLM else {}
    with torch.no_grad():
        want = ref_model(**ref)
    got = model({**ours, **positions})
    mask = ours["padding_mask"]
    for ours_key, ref_key in outputs.items():
        value, expected = (got if ours_key is None else got[ours_key]), getattr(want, ref_key)
        per_token = np.ndim(value) >= 2 and np.shape(value)[:2] == mask.shape
        assert max_diff(value, expected, mask if per_token else None) <= ATOL, (name, ours_key)
    if cls is not Bert:  # the encoder alone, from the same folder (its head weights logged, not loaded)
        base = {"Roberta": T.RobertaModel, "DistilBert": T.DistilBertModel, "Electra": T.ElectraModel}[
            next(k for k in ("Roberta", "DistilBert", "Electra") if name.startswith(k))]
        with torch.no_grad():
            hidden = base.from_pretrained(path).eval()(**ref).last_hidden_state
        assert max_diff(Bert.from_pretrained(path)(ours)["sequence_output"], hidden, mask) <= ATOL


def test_family_configs_become_bert_options(hf_dirs):
    roberta = Bert.from_pretrained(hf_dirs["RobertaModel"])
    assert (roberta.position_offset, roberta.num_segments, roberta.max_tokens) == (2, 1, 64)
    distil = Bert.from_pretrained(hf_dirs["DistilBertModel"])
    assert (distil.num_segments, distil.pooler_activation, distil.embeddings.segment_embedding) == (0, "relu", None)
    electra = Bert.from_pretrained(hf_dirs["ElectraForPreTraining"])
    assert (electra.embedding_dim, electra.hidden_dim, electra.pooler_activation) == (16, 32, "gelu")


def test_roberta_tokenizer_and_packing_match_transformers(roberta_tokenizer_dir):
    ref = T.AutoTokenizer.from_pretrained(roberta_tokenizer_dir)
    texts = sst2_lines(300) + ["<s>two  spaces</s> and a <mask>", " leading space", "ünïcode ☃ 日本語"]
    ours = load_tokenizer(roberta_tokenizer_dir)
    assert [list(map(int, row)) for row in ours(texts)] == [ref(t, add_special_tokens=False)["input_ids"]
                                                           for t in texts]
    pre = preprocessor_from_pretrained(roberta_tokenizer_dir, sequence_length=32)
    assert isinstance(pre, RobertaPreprocessor)
    for batch in (texts, mrpc_pairs(200)):
        got = pre(tuple(batch) if isinstance(batch, tuple) else batch)
        want = ref(*([batch] if isinstance(batch, list) else batch), padding="max_length", truncation=True,
                   max_length=32, return_tensors="np")
        np.testing.assert_array_equal(got["token_ids"], want["input_ids"])
        np.testing.assert_array_equal(got["padding_mask"], want["attention_mask"].astype(bool))
        assert not np.asarray(got["segment_ids"]).any()  # one token type


def test_fine_tune_with_recipe_then_export_serves_raw_text(hf_dirs, tmp_path):
    """classify.py --init_checkpoint=<HF RoBERTa>: trains, saves a folder tfllm loads, exports raw-text serving.

    Single texts: a pair would trace the byte-level BPE graph twice, in training and in the export, for
    packing that test_roberta_tokenizer_and_packing_match_transformers already checks.
    """
    rows = [line.rstrip("\n").split("\t") for line in open(DATA / "sst2/dev.tsv", encoding="utf-8")][1:49]
    (tmp_path / "train.tsv").write_text("label\tsentence\n" + "".join(f"{y}\t{x}\n" for y, x in rows))
    proc = run_script(
        "recipes/classify.py", f"--train_file={tmp_path / 'train.tsv'}",
        f"--init_checkpoint={hf_dirs['RobertaForSequenceClassification']}", f"--model_dir={tmp_path / 'model'}",
        f"--export_dir={tmp_path / 'export'}", "--model_name=sst2", "--max_seq_length=24", "--batch_size=16",
        "--epochs=1", "--learning_rate=1e-3", "--strategy=cpu", "--log_every=1", timeout=900)
    assert "step 3/3" in proc.stderr
    texts = [x for _, x in rows]
    # The data pipeline's packing (pack_ragged) cuts what transformers cuts.
    cut = sum(len(ids) > 24 for ids in T.AutoTokenizer.from_pretrained(hf_dirs["RobertaModel"])(texts)["input_ids"])
    assert 0 < cut < 48 and f"{cut} of 48 texts truncated to 24 tokens" in proc.stderr
    saved = load_folder(tmp_path / "model")
    pre = saved.preprocessor()
    assert isinstance(pre, RobertaPreprocessor) and saved.model.backbone.position_offset == 2
    served = serve_in_fresh_process(tmp_path / "export/sst2/1", {"text": texts[:4]})
    want = tf.nn.softmax(saved.model(pre(tf.constant(texts[:4])), training=False)).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"]), want, atol=1e-5)


@pytest.mark.parametrize("name,field,value", [
    ("RobertaModel", "model_type", "xlnet"),
    ("RobertaModel", "model_type", ["roberta"]),
    ("RobertaModel", "position_embedding_type", "relative_key"),
    ("DistilBertModel", "activation", "silu"),
    ("ElectraForPreTraining", "embedding_size", 0),
])
def test_unsupported_config_is_refused_naming_the_field(hf_dirs, tmp_path, name, field, value):
    path = copy_dir(hf_dirs[name], tmp_path / "m")
    spec = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**spec, field: value}))
    with pytest.raises(ConversionError, match=re.escape(f"config.json: {field}={value!r}")):
        Bert.from_pretrained(path)


def _published(model_type, layers, hidden, heads, **extra):
    if model_type == "distilbert":
        return dict(model_type="distilbert", vocab_size=30522, dim=hidden, n_layers=layers, n_heads=heads,
                    hidden_dim=4 * hidden, max_position_embeddings=512, activation="gelu",
                    sinusoidal_pos_embds=False, dropout=0.1, attention_dropout=0.1, **extra)
    return {**dict(model_type=model_type, vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                   num_attention_heads=heads, intermediate_size=4 * hidden, hidden_act="gelu",
                   max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                   position_embedding_type="absolute"), **extra}


_ROBERTA = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1)
# The config.json fields of published checkpoints (as on their model cards / configs), and the preset they are.
PUBLISHED = {
    "FacebookAI/roberta-base": (_published("roberta", 12, 768, 12, **_ROBERTA), "roberta_base"),
    "FacebookAI/roberta-large": (_published("roberta", 24, 1024, 16, **_ROBERTA), "roberta_large"),
    "distilbert/distilroberta-base": (_published("roberta", 6, 768, 12, **_ROBERTA), None),
    "distilbert/distilbert-base-uncased": (_published("distilbert", 6, 768, 12), "distilbert_base"),
    "google/electra-small-discriminator": (_published("electra", 12, 256, 4, embedding_size=128), "electra_small"),
    "google/electra-base-discriminator": (_published("electra", 12, 768, 12, embedding_size=768), "electra_base"),
    "google/electra-large-discriminator": (_published("electra", 24, 1024, 16, embedding_size=1024),
                                           "electra_large"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configs_map_onto_presets(name):
    spec, preset = PUBLISHED[name]
    kwargs = encoder_converter(spec, name).config_from_hf(spec, name)
    assert kwargs["max_sequence_length"] - kwargs.get("position_offset", 0) == 512  # usable positions
    if preset:
        assert {k: kwargs[k] for k in Bert.presets[preset]} == Bert.presets[preset]
