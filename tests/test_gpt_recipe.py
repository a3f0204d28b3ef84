"""train_gpt.py / generate.py end to end, and the generation SavedModel served without tfllm."""

from pathlib import Path

import pytest

from tests.fresh_process import serve_calls_in_fresh_process
from tests.fresh_process import serve_in_fresh_process
from tests.run_script import run_script
from tfllm.data.vocabulary_files import build_byte_pair_files
from tfllm.export.gpt_export import export_gpt
from tfllm.models import cast_weights
from tfllm.models import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny char-level run on a repetitive text it can learn in 150 steps."""
    tmp = tmp_path_factory.mktemp("gpt")
    (tmp / "text.txt").write_text("abcdefgh " * 3000)
    proc = run_script("recipes/train_gpt.py", f"--text_file={tmp / 'text.txt'}",
                      f"--model_dir={tmp / 'model'}", "--num_layers=1", "--num_heads=2", "--hidden_dim=32",
                      "--block_size=24", "--batch_size=16", "--max_steps=150", "--warmup_steps=10",
                      "--learning_rate=1e-2", "--eval_every=75", "--log_every=50", "--strategy=cpu")
    return tmp, proc


def test_training_learns_the_repeating_text(run):
    _, proc = run
    line = [line for line in proc.stdout.splitlines() if line.startswith("validation:")][0]
    loss = float(line.split()[2])
    assert loss < 0.1, line  # uniform over 9 symbols would be ln 9 = 2.2 nats


def test_generate_recipe_continues_the_pattern(run):
    tmp, _ = run
    proc = run_script("recipes/generate.py", f"--model_dir={tmp / 'model'}",
                      "--prompt=abc", "--max_new_tokens=40", "--temperature=0", "--jit_compile=false")
    assert "abcdefgh abcdefgh abcdefgh" in proc.stdout
    # --precision=bf16 decodes with the bfloat16 copy of the weights (tfllm.models.cast_weights), as in-process.
    proc = run_script("recipes/generate.py", f"--model_dir={tmp / 'model'}", "--precision=bf16",
                      "--prompt=abc", "--max_new_tokens=40", "--temperature=0", "--jit_compile=false")
    loaded = load(tmp / "model")
    half = cast_weights(loaded.model, "bfloat16", spec=loaded.config)
    assert proc.stdout.splitlines()[:2] == [f"# {loaded.weights} (bfloat16)", "abc" + half.generate(
        ["abc"], max_new_tokens=40, temperature=0, jit_compile=False)[0]]


def test_exported_generation_matches_in_process_generate(run):
    tmp, _ = run

    lm = load(tmp / "model").model
    path = export_gpt(lm, tmp / "export", model_name="toy", max_new_tokens=16)
    prompts = ["abc", "fgh abcd", "h"]
    options = {"prompt": prompts, "max_new_tokens": 5, "temperature": 1.0, "top_k": 3, "seed": 7}
    too_many = dict(options, max_new_tokens=17)
    greedy, a, b, refused = serve_calls_in_fresh_process([
        (path, "serving_default", {"prompt": prompts}), (path, "generate", options), (path, "generate", options),
        (path, "generate", too_many)])
    assert greedy["generated"] == lm.generate(prompts, max_new_tokens=16, temperature=0, jit_compile=False)
    assert a == b and all(len(t) == 5 for t in a["generated"])  # seeded and cut to the request
    assert "exceeds the exported maximum 16" in refused["error"]


def test_bpe_path_train_generate_and_serve(tmp_path):
    """BPE files (as tools/build_vocab.py --type=bpe writes them, tested in test_byte_pair.py) ->
    train_gpt.py --tokenizer=bpe -> generate and the export agree."""

    text = ("the quick brown fox jumps over the lazy dog . " * 20 + "\n\n") * 40
    (tmp_path / "text.txt").write_text(text)
    build_byte_pair_files([str(tmp_path / "text.txt")], str(tmp_path / "bpe"), 300, log=lambda *a: None)
    proc = run_script("recipes/train_gpt.py",
                      f"--text_file={tmp_path / 'text.txt'}", f"--model_dir={tmp_path / 'model'}",
                      "--tokenizer=bpe",
                      f"--bpe_vocab={tmp_path / 'bpe' / 'vocab.json'}",
                      f"--bpe_merges={tmp_path / 'bpe' / 'merges.txt'}", "--num_layers=1", "--num_heads=2",
                      "--hidden_dim=32", "--block_size=24", "--batch_size=16", "--max_steps=100",
                      "--warmup_steps=10", "--learning_rate=1e-2", "--eval_every=100", "--log_every=50",
                      "--strategy=cpu")
    line = [line for line in proc.stdout.splitlines() if line.startswith("validation:")][0]
    loss = float(line.split()[2])
    assert loss < 0.5, proc.stdout  # a 1-layer model learns the repeated sentence (uniform: ln 300 = 5.7)

    lm = load(tmp_path / "model").model  # what recipes/generate.py loads
    [continuation] = lm.generate(["the quick"], max_new_tokens=12, temperature=0, jit_compile=False)
    assert "brown fox jumps over the lazy dog" in continuation
    path = export_gpt(lm, tmp_path / "export", model_name="toy_bpe", max_new_tokens=8)
    prompts = ["the quick", "over the lazy"]
    served = serve_in_fresh_process(path, {"prompt": prompts})
    assert served["generated"] == lm.generate(prompts, max_new_tokens=8, temperature=0, jit_compile=False)
