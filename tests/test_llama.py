"""Llama / Mistral / Qwen2: loading, logits and greedy generation equal to transformers', cache, XLA, tokenizer.

Reference models are small random `transformers` models (every weight
perturbed, so norm scales and biases are exercised), saved with
`save_pretrained`; the Llama one as bfloat16 safetensors in several shards.
No downloads.
"""

import copy
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import tensorflow as tf
import tokenizers as hf
import torch
import transformers as T
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from tests.conftest import SHARED_DATA
from tests.run_script import run_script
from tfllm.convert import ConversionError
from tfllm.convert.hf_llama import llama_config_from_hf
from tfllm.errors import ConfigError
from tfllm.export import export_gpt
from tfllm.layers.rotary_embedding import inverse_frequencies
from tfllm.models import Llama
from tfllm.models import LlamaCausalLM
from tfllm.models import load as load_folder
from tfllm.peft import apply_peft
from tfllm.peft import merge_lora
from tfllm.tokenizers import load_tokenizer
from tfllm.tokenizers.strings import as_text

ATOL = 1e-4
VOCAB = 300
SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64, bos_token_id=None, eos_token_id=None, pad_token_id=None)
MODELS = {
    # GQA, llama3 RoPE scaling, untied, attention_bias on q/k/v/o; stored as bf16 in shards.
    "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(
        **SMALL, num_key_value_heads=2, attention_bias=True, rms_norm_eps=1e-5, rope_scaling=dict(
            rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=8), rope_theta=500000.0)),
    # Multi-query attention, a sliding window much shorter than the sequences.
    "mistral": lambda: T.MistralForCausalLM(T.MistralConfig(**SMALL, num_key_value_heads=1, sliding_window=3)),
    # qkv bias, tied embeddings, linear RoPE scaling, a window in the second layer only.
    "qwen2": lambda: T.Qwen2ForCausalLM(T.Qwen2Config(
        **SMALL, num_key_value_heads=2, tie_word_embeddings=True, use_sliding_window=True, sliding_window=4,
        max_window_layers=1, rope_scaling=dict(rope_type="linear", factor=2.0))),
}


def shakespeare_lines(n=400):
    path = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if path.exists():
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    return ["First Citizen:", "Before we proceed any further, hear me speak.", "All:", "Speak, speak."] * 20


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    """A byte-level BPE tokenizer.json trained with `tokenizers` (as GPT-2's: ByteLevel pre-tokenizer)."""
    trainer = hf.ByteLevelBPETokenizer()
    trainer.train_from_iterator(shakespeare_lines(), vocab_size=VOCAB, min_frequency=2,
                                special_tokens=["<|endoftext|>"])
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    trainer.save(str(path))
    return path


def perturb(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            p.copy_(1.0 + noise if "norm" in name else noise)
    return model.eval()


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory, tokenizer_json):
    """{kind: (folder, the float32 transformers model it holds)}."""
    dirs = {}
    for kind, make in MODELS.items():
        torch.manual_seed(0)
        model = perturb(make())
        path = tmp_path_factory.mktemp(kind)
        if kind == "llama":  # the reference: bf16-rounded weights, computed in float32 (RoPE buffers too)
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(torch.bfloat16).float())
            copy.deepcopy(model).to(torch.bfloat16).save_pretrained(path, max_shard_size="20KB")
        else:
            model.save_pretrained(path)
        (path / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
        dirs[kind] = (path, model)
    return dirs


@pytest.fixture(scope="module")
def lms(hf_dirs):
    return {kind: LlamaCausalLM.from_pretrained(path) for kind, (path, _) in hf_dirs.items()}


def token_ids(rows=2, length=12, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB, (rows, length)).astype("int32")


def test_llama_checkpoint_is_sharded_bf16(hf_dirs):
    path, _ = hf_dirs["llama"]
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_logits_match_transformers(hf_dirs, lms, kind):
    _, reference = hf_dirs[kind]
    ids = token_ids()
    mask = np.ones_like(ids, bool)
    mask[1, 9:] = False  # right padding: the real positions must agree
    ours = lms[kind]({"token_ids": ids, "padding_mask": mask}).numpy()
    with torch.no_grad():
        theirs = reference(input_ids=torch.tensor(ids, dtype=torch.long),
                           attention_mask=torch.tensor(mask.astype("int64"))).logits.numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours[mask], theirs[mask], atol=ATOL, rtol=0)


def test_backbone_loads_alone_and_config_maps(hf_dirs, lms):
    backbone = Llama.from_pretrained(hf_dirs["qwen2"][0])
    assert backbone.tie_word_embeddings and backbone.qkv_bias and not backbone.output_bias
    assert backbone.layer_types == ["full_attention", "sliding_attention"] and backbone.sliding_window == 4
    assert [b.sliding_window for b in lms["qwen2"].backbone.decoder_blocks] == [None, 4]
    assert [b.sliding_window for b in lms["mistral"].backbone.decoder_blocks] == [3, 3]
    llama = lms["llama"].backbone
    assert (llama.num_key_value_heads, llama.rope_scaling["rope_type"], llama.output_bias) == (2, "llama3", True)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_greedy_generation_matches_transformers(hf_dirs, lms, kind):
    _, reference = hf_dirs[kind]
    prompts = token_ids(2, 5, seed=1)
    with torch.no_grad():
        theirs = reference.generate(torch.tensor(prompts, dtype=torch.long), do_sample=False, max_new_tokens=10,
                                    min_new_tokens=10).numpy()[:, 5:]
    ours = lms[kind].generate(prompts.tolist(), max_new_tokens=10, temperature=0, jit_compile=kind == "qwen2")
    assert ours == theirs.tolist()


def test_rope_frequencies_match_transformers():
    for scaling in (dict(rope_type="linear", factor=2.0), dict(
            rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=16)):
        config = T.LlamaConfig(**SMALL, rope_parameters=dict(scaling, rope_theta=500000.0))
        theirs, _ = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](config, "cpu")
        np.testing.assert_allclose(inverse_frequencies(8, 500000.0, scaling), theirs.numpy(), rtol=1e-6)


def test_cached_decoding_equals_the_full_forward(lms):
    lm = lms["mistral"]  # the sliding window must hold with the cache too
    ids = token_ids(2, 10, seed=2)
    full = lm({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}).numpy()
    cache = lm.init_cache(2, 10)
    assert tuple(cache[0][0].shape) == (2, 10, 1, 8)  # only the key/value heads are cached
    logits, _, cache = lm.call_with_cache(ids[:, :4], cache, 0)  # a prompt chunk, then one token at a time
    steps = [logits.numpy()]
    for i in range(4, 10):
        logits, _, cache = lm.call_with_cache(ids[:, i:i + 1], cache, i)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [dict(temperature=0), dict(num_beams=3)], ids=["greedy", "beams"])
def test_xla_generate_equals_eager(lms, options):
    lm = lms["qwen2"]
    prompts = [[5, 6, 7, 8], [9, 10]]  # different lengths: right-padded
    compiled = lm.generate(prompts, max_new_tokens=6, **options)
    assert compiled == lm.generate(prompts, max_new_tokens=6, jit_compile=False, **options)
    assert [len(t) for t in compiled] == [6, 6]


def test_every_sampler_runs_reproducibly(lms):
    # XLA draws other random numbers than eager TensorFlow, so sampled tokens are compared run to run.
    lm = lms["qwen2"]
    prompts = [[5, 6, 7, 8], [9, 10]]
    for options in (dict(temperature=0.8), dict(top_k=5), dict(top_p=0.9, top_k=20, jit_compile=True)):
        options = {"jit_compile": False, **options}
        first = lm.generate(prompts, max_new_tokens=6, seed=3, **options)
        assert first == lm.generate(prompts, max_new_tokens=6, seed=3, **options), options
        assert [len(t) for t in first] == [6, 6] and first != lm.generate(prompts, 6, seed=4, **options)


def test_tokenizer_ids_equal_hugging_face(hf_dirs, tokenizer_json):
    ours = load_tokenizer(hf_dirs["qwen2"][0])
    theirs = hf.Tokenizer.from_file(str(tokenizer_json))
    texts = shakespeare_lines(60)[-20:] + ["  two  spaces\tand a tab", "digits 12345 and émigré <|endoftext|> end",
                                            "line\n\nbreaks  \n  "]
    expected = [theirs.encode(t, add_special_tokens=False).ids for t in texts]
    assert [ids.tolist() for ids in ours.encode(texts)] == expected
    assert as_text(ours.detokenize(np.array([expected[0]], "int32"))) == texts[0]


def test_strings_in_strings_out(lms):
    lm = lms["llama"]
    text = lm.generate("First Citizen:", max_new_tokens=5, temperature=0, jit_compile=False)
    ids = lm.tokenizer.encode("First Citizen:").tolist()
    new_ids = lm.generate([ids], 5, temperature=0, jit_compile=False)[0]  # the same shapes: no new trace
    assert text == as_text(lm.tokenizer.detokenize(np.array([new_ids], "int32")))


@pytest.mark.parametrize("kind,tokenizer,words", [
    ("SentencePiece-style", {"model": {"type": "BPE", "byte_fallback": True, "vocab": {}, "merges": []},
                             "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581"}}, "SentencePiece"),
    ("Llama 3 regex", {"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {
        "type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel", "use_regex": False}]}},
     "pre_tokenizer=Sequence[Split, ByteLevel]"),
    ("Unigram", {"model": {"type": "Unigram", "vocab": []}}, "model.type='Unigram'"),
])
def test_unsupported_tokenizers_are_named(tmp_path, kind, tokenizer, words):
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ConfigError, match="not supported") as error:
        load_tokenizer(tmp_path)
    assert words in str(error.value)


BASE = dict(model_type="llama", vocab_size=100, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
            num_attention_heads=4)


@pytest.mark.parametrize("changes,field", [
    (dict(rope_parameters=dict(rope_type="yarn", factor=2.0, rope_theta=1e4)), "rope_parameters"),
    (dict(rope_scaling=dict(type="dynamic", factor=2.0)), "rope_scaling"),
    (dict(rope_scaling=dict(rope_type="llama3", factor=2.0)), "rope_scaling"),
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(model_type="gemma"), "model_type"),
    (dict(num_key_value_heads=3), "num_key_value_heads"),
    (dict(partial_rotary_factor=0.5), "partial_rotary_factor"),
    (dict(model_type="qwen2", use_sliding_window=True, sliding_window=4, layer_types=["full_attention", "chunked"]),
     "layer_types"),
])
def test_unrepresentable_config_is_refused_naming_the_field(changes, field):
    with pytest.raises(ConversionError, match=field):
        llama_config_from_hf({**BASE, **changes}, "config.json")


def test_refused_config_from_pretrained(hf_dirs, tmp_path):
    path, _ = hf_dirs["mistral"]
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"] = dict(rope_type="yarn", factor=4.0, rope_theta=10000.0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="rope_parameters.*yarn"):
        LlamaCausalLM.from_pretrained(tmp_path)


# Published config.json values (the fields that matter), and what they map to.
PUBLISHED = {
    "HuggingFaceTB/SmolLM-135M": (dict(
        model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5,
        rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=True, hidden_act="silu"), "smollm_135m"),
    "Qwen/Qwen2.5-0.5B": (dict(
        model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_theta=1000000.0, sliding_window=32768, use_sliding_window=False, max_window_layers=21,
        tie_word_embeddings=True, hidden_act="silu"), "qwen2.5_0.5b"),
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": (dict(
        model_type="llama", vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
        rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False, hidden_act="silu"), "tinyllama_1.1b"),
    "meta-llama/Llama-3.2-1B": (dict(
        model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling=dict(
            factor=32.0, high_freq_factor=4.0, low_freq_factor=1.0, original_max_position_embeddings=8192,
            rope_type="llama3"), tie_word_embeddings=True, hidden_act="silu"), None),
    "mistralai/Mistral-7B-v0.1": (dict(
        model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5,
        rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False, hidden_act="silu"), None),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configs_map(name):
    config, preset = PUBLISHED[name]
    kwargs = llama_config_from_hf(config, name)
    if preset:
        assert {k: kwargs[k] for k in Llama.presets[preset]} == Llama.presets[preset]
    if name.startswith("mistralai"):
        assert kwargs["sliding_window"] == 4096 and kwargs["layer_types"] is None


def test_save_pretrained_round_trip(lms, tmp_path):
    lm = lms["qwen2"]
    lm.save_pretrained(tmp_path / "saved")
    loaded = load_folder(tmp_path / "saved")
    ids = token_ids()
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    assert isinstance(loaded.model, LlamaCausalLM) and loaded.tokenizer is not None
    np.testing.assert_allclose(loaded.model(inputs).numpy(), lm(inputs).numpy(), atol=1e-6)
    again = LlamaCausalLM.from_pretrained(tmp_path / "saved")
    np.testing.assert_allclose(again(inputs).numpy(), lm(inputs).numpy(), atol=1e-6)
    assert as_text(again.tokenizer.detokenize(np.array([[40, 41]], "int32"))) == as_text(
        lm.tokenizer.detokenize(np.array([[40, 41]], "int32")))


def test_exported_generation_matches_generate(lms, tmp_path):
    lm = lms["mistral"]  # window 3, so the exported loop must respect the window as generate does
    path = export_gpt(lm, tmp_path, model_name="mistral", max_new_tokens=6, warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    prompts = ["First Citizen:", "All:"]
    # A random model's bytes may stop mid-character: generate() drops those, as keras-hub's detokenize does.
    generated = [t.decode("utf-8", "ignore") for t in served(prompt=tf.constant(prompts))["generated"].numpy()]
    assert generated == lm.generate(prompts, max_new_tokens=6, temperature=0)


def test_lora_on_every_projection(hf_dirs):
    lm = LlamaCausalLM.from_pretrained(hf_dirs["llama"][0])
    ids = token_ids()
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    before = lm(inputs).numpy()
    apply_peft(lm, "lora", rank=2, alpha=4, targets="all")
    names = {v.path.split("/")[-3] if "lora_update" in v.path else v.path.split("/")[-2]
             for v in lm.trainable_weights if "lora" in v.path}
    assert names == {"query", "key", "value", "attention_output", "gate", "intermediate", "output"}
    assert not [v.path for v in lm.trainable_weights if "lora" not in v.path]  # the head is the tied/own matrix
    np.testing.assert_allclose(lm(inputs).numpy(), before, atol=1e-6)  # B starts at zero
    for v in lm.trainable_weights:
        v.assign(np.random.default_rng(0).normal(0, 0.05, v.shape).astype("float32"))
    adapted = lm(inputs).numpy()
    assert np.abs(adapted - before).max() > 1e-3
    assert merge_lora(lm) == 2 * 7
    np.testing.assert_allclose(lm(inputs).numpy(), adapted, atol=1e-4)


def test_train_recipe_trains_llama_from_scratch(tmp_path):
    (tmp_path / "text.txt").write_text("abcdefgh " * 400)
    proc = run_script("recipes/train_gpt.py", "--architecture=llama", f"--text_file={tmp_path / 'text.txt'}",
                      f"--model_dir={tmp_path / 'model'}", "--num_layers=1", "--num_heads=2",
                      "--num_key_value_heads=1", "--hidden_dim=16", "--block_size=16", "--batch_size=8",
                      "--max_steps=30", "--warmup_steps=2", "--learning_rate=1e-2", "--eval_every=30",
                      "--eval_steps=2", "--log_every=30", "--strategy=cpu")
    loss = float([line for line in proc.stdout.splitlines() if line.startswith("validation:")][0].split()[2])
    assert loss < 2.0  # uniform over the 9 symbols would be ln 9 = 2.2 nats
    lm = load_folder(tmp_path / "model").model
    assert isinstance(lm, LlamaCausalLM) and lm.backbone.num_key_value_heads == 1
