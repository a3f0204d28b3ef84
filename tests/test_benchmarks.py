"""tools/benchmark.py (the README's speed figures) and tools/serve_bench.py at toy sizes.

Every sub-command of benchmark.py runs once, all of them in ONE process (the
TensorFlow start-up is paid once), on tiny models, one timed call per
variant, and a few generated lines of text. No figure is checked for speed,
only that each table has a row per variant with a positive figure, under the
hardware line.
"""

import importlib.util
import os
import random
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tools.bench.hardware import hardware_line
from tools.bench.hardware import parse_cpuinfo
from tools.bench.hardware import read_cpu
from tools.bench.torch_reference import question_answering_answers
from tools.bench.torch_reference import shuffled_batches

ROOT = Path(__file__).resolve().parents[1]
TORCH = all(importlib.util.find_spec(name) for name in ("torch", "transformers"))

COMMANDS = ["train-bert", "train-gpt", "generate", "decode-profile", "serve", "projection", "char-lm", "finetune"]
RUN = [c for c in COMMANDS if c != "finetune" or TORCH]  # finetune's toy checkpoint is written by transformers
TOY_FLAGS = [
    "--repeats=1", "--batch_sizes=1", "--noxla", "--torch", "--precisions=fp32,bf16",
    # generate, decode-profile
    "--num_layers=1", "--num_heads=2", "--hidden_dim=32", "--vocabulary_size=64", "--max_sequence_length=16",
    "--prompt_length=4", "--new_tokens=4",
    # train-bert, projection (train-gpt below)
    "--peak_matmul_size=256",
    "--bert_sizes=L1_H32_A2", "--bert_batch_size=2", "--bert_sequence_length=8", "--bert_vocabulary_size=64",
    # train-gpt
    "--gpt_num_layers=1", "--gpt_num_heads=2", "--gpt_hidden_dim=32", "--gpt_vocabulary_size=64",
    "--gpt_batch_size=2", "--gpt_sequence_length=8",
    # serve
    "--serve_size=L1_H32_A2", "--serve_sequence_length=8", "--serve_requests=2", "--serve_client_requests=2",
    "--serve_client_rounds=1", "--serving_precisions=fp32,bf16,int8",
    # char-lm (nanoGPT's model, 2 steps)
    "--char_steps=2",
    # finetune (a tiny random BERT in Hugging Face layout, one update of the 24 toy rows, 12 dev rows)
    "--finetune_rows=24",
]
WORDS = "a gripping beautifully acted film dull and far too long not bad at all the plot is thin".split()


def _write_toy_data(directory):
    rng = random.Random(0)
    for name, count in (("dev.tsv", 12), ("train.tsv", 24)):
        lines = [f"{' '.join(rng.choices(WORDS, k=rng.randint(3, 9)))} .\t{i % 2}" for i in range(count)]
        (directory / name).write_text("sentence\tlabel\n" + "\n".join(lines) + "\n")
    (directory / "input.txt").write_text("".join(rng.choice("abcdefgh ij\n") for _ in range(2000)))


def _write_tiny_bert(directory):
    """A random 1-layer BERT with a WordPiece vocabulary of the toy words, saved by transformers (finetune's input).

    The published MiniLM is tested in test_minilm.py and test_training_parity.py; here only the plumbing runs.
    """
    import transformers  # noqa: PLC0415  (test extra; only when TORCH)

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *sorted(set(WORDS))]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=37, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(directory)
    transformers.BertTokenizer(vocab=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The finished process of one `benchmark.py <all sub-commands>` toy run, and {sub-command: its output}.

    One sub-command failing stops the run: the tests of the ones before it still pass, the others show stderr.
    """
    data = tmp_path_factory.mktemp("bench-data")
    _write_toy_data(data)
    bert = tmp_path_factory.mktemp("tiny-bert")
    if TORCH:
        _write_tiny_bert(bert)
    # PYTHONPATH: char-lm's recipe subprocess must import this checkout's tfllm too.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), *RUN, *TOY_FLAGS,
         f"--serve_text_file={data / 'dev.tsv'}", f"--char_text_file={data / 'input.txt'}",
         f"--finetune_data_dir={data}", f"--finetune_checkpoint={bert}"],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    sections = re.split(r"^=== benchmark\.py (\S+) ===$", proc.stdout, flags=re.M)
    return proc, dict(zip(sections[1::2], sections[2::2]))


def _output(toy_run, command):
    if command not in RUN:
        pytest.skip("finetune's toy checkpoint needs transformers and torch (the test extra)")
    proc, sections = toy_run
    finished = list(sections)[:-1] if proc.returncode else list(sections)  # a failure cuts the last one short
    if command not in finished:
        pytest.fail(f"benchmark.py {command} did not finish (exit {proc.returncode}):\n{proc.stderr[-5000:]}")
    return sections[command]


def parse_tables(text):
    """[(line above the header, [{column: cell}, ...]), ...] of every `print_table` table in `text`.

    A table is a header line, a line of dashes (one run per column, which
    gives the columns' spans: cells are right-aligned and may hold spaces),
    then rows: the lines that follow with the same length and blanks between
    the spans (a report line may come right after the table).
    """
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if i < 2 or not re.fullmatch(r"-+( {2}-+)*", line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]

        def in_table(row, line=line, spans=spans):
            return len(row) == len(line) and all(not row[b:b + 2].strip() for _, b in spans[:-1])

        header = [lines[i - 1][a:b].strip() for a, b in spans]
        rows = []
        for row in lines[i + 1:]:
            if not in_table(row):
                break
            rows.append({name: row[a:b].strip() for name, (a, b) in zip(header, spans)})
        tables.append((lines[i - 2], rows))
    return tables


def _check_table(table, name_column, variants, figure):
    above, rows = table
    assert above.startswith("hardware: ") and "AVX2" in above and "oneDNN" in above, above
    assert sorted(row[name_column] for row in rows) == sorted(variants)
    for row in rows:
        assert float(row[figure]) > 0, (figure, row)


TRAIN = ["tfllm Trainer", "keras-hub fit", "tfllm Trainer bf16", "keras-hub fit bf16"] + ["PyTorch eager"] * TORCH
EXPECTED = {  # sub-command: [(name column, variants, figure that must be positive) per table]
    "train-bert": [("variant", TRAIN, "tokens/s")],
    "train-gpt": [("variant", TRAIN, "tokens/s")],
    "generate": [("variant", ["tfllm cached", "tfllm cached, no XLA", "keras-hub", "keras-hub XLA",
                              "tfllm cached bf16", "tfllm cached bf16, XLA", "tfllm uncached"]
                  + ["PyTorch transformers"] * TORCH,
                  "new tok/s")],
    "decode-profile": [("part", ["whole step", "blocks", "LM head", "blocks, cache 4x longer",
                                 "blocks' matvecs only", "matvecs, int8, dequantize + matmul",
                                 "matvecs, int8, fused multiply-sum", "matvecs, bfloat16, convert + matmul",
                                 "matvecs, bfloat16 x bfloat16", "blocks' matvecs only, no XLA",
                                 "matvecs, bfloat16 x bfloat16, no XLA", "whole step, no XLA",
                                 "whole step, bfloat16, no XLA", "blocks, bfloat16, no XLA",
                                 "LM head, bfloat16, no XLA"],
                        "ms per step")],
    "serve": [("variant", ["tfllm SavedModel, dynamic length", "tfllm SavedModel, dynamic length, bfloat16",
                           "tfllm SavedModel, dynamic length, int8", "tfllm SavedModel, fixed length",
                           "keras-hub SavedModel"], "examples/s")] * 2,
    "projection": [("layer", ["keras EinsumDense", "tfllm EinsumDense"] * 2, "median ms")],
    "char-lm": [("run", ["tfllm train_gpt.py"] + ["PyTorch transformers GPT-2, nanoGPT loop"] * TORCH,
                 "wall s (process)")],
    "finetune": [("variant", ["tfllm classify.py"] + ["PyTorch transformers"] * TORCH, "examples/s")],
}


def test_every_sub_command_is_covered():
    # Read, not imported: benchmark.py defines absl flags at import, which would leak into other tests.
    source = (ROOT / "tools" / "benchmark.py").read_text()
    assert set(re.findall(r'"([a-z-]+)"', re.search(r"^COMMANDS = \(.*?\)$", source, re.M | re.S).group(0))) \
        == set(COMMANDS) == set(EXPECTED)


def test_toy_run_exits_cleanly(toy_run):
    proc, sections = toy_run
    assert proc.returncode == 0, f"benchmark.py failed:\n{proc.stderr[-5000:]}"
    assert list(sections) == RUN


@pytest.mark.parametrize("command", COMMANDS)
def test_sub_command_prints_a_row_per_variant(toy_run, command):
    output = _output(toy_run, command)
    tables = parse_tables(output)
    assert len(tables) == len(EXPECTED[command]), output
    for table, expected in zip(tables, EXPECTED[command]):
        _check_table(table, *expected)


def test_train_bert_reports_input_wait_and_profile(toy_run):
    output = _output(toy_run, "train-bert")
    assert re.search(r"bf16: tfllm Trainer bf16 [0-9.]+x tfllm Trainer, [0-9.]+x keras-hub fit bf16", output)
    assert re.search(r"input \(SST-2 train text.*input is at most [0-9.]+% of a step", output)
    assert "Profile: the step's matmuls alone" in output


def test_finetune_reports_dev_accuracy_and_the_ratio(toy_run):
    output = _output(toy_run, "finetune")
    _, rows = parse_tables(output)[0]
    for row in rows:
        assert 0.0 <= float(row["dev accuracy"]) <= 1.0 and row["seed"] == "0", row
    if TORCH:
        assert re.search(r"tfllm / PyTorch: training time [0-9.]+x, examples/s [0-9.]+x, dev accuracy [-+][0-9.]+",
                         output), output


def test_serve_single_client_reports_p50_ratios(toy_run):
    _, single = parse_tables(_output(toy_run, "serve"))[0]
    for row in single:
        assert 0 < float(row["p50 ms"]) <= float(row["p90 ms"]), row
        assert float(row["p50 speed vs keras-hub"]) > 0 and float(row["p50 speed vs tfllm fixed"]) > 0, row
        assert float(row["p50 speed vs tfllm float32"]) > 0, row


def test_serve_concurrent_clients_have_latencies_and_no_errors(toy_run):
    _, concurrent = parse_tables(_output(toy_run, "serve"))[1]
    for row in concurrent:
        assert row["clients"] == "8" and row["errors"] == "0", row
        assert 0 < float(row["p50 ms"]) <= float(row["p99 ms"]), row


# --- tools/bench/hardware.py

SAPPHIRE_RAPIDS = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_parse_cpuinfo_reads_the_first_processor():
    name, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert name == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"} <= flags
    assert parse_cpuinfo("processor : 0\nFeatures : fp asimd\n") == (None, None)  # ARM: no x86 flags line


def test_hardware_line_names_flags_threads_and_onednn():
    line = hardware_line(parse_cpuinfo(SAPPHIRE_RAPIDS), threads=("56 (default)", "2"), onednn=True)
    assert line.startswith("hardware: Intel(R) Xeon(R) Platinum 8480+, ")
    assert ("AVX2 yes, AVX-512F yes, AVX512_BF16 yes, AVX512_VNNI yes, AMX yes; "
            "TensorFlow threads intra-op 56 (default), inter-op 2; oneDNN on") in line
    older = hardware_line(("AMD EPYC 7B12", {"avx2", "fma"}), threads=("2", "2"), onednn=False)
    assert "AVX2 yes, AVX-512F no, AVX512_BF16 no, AVX512_VNNI no, AMX no" in older and older.endswith("oneDNN off")


def test_hardware_line_falls_back_without_cpuinfo(tmp_path):
    name, flags = read_cpu(str(tmp_path / "no-cpuinfo"))
    assert name and flags is None
    assert "instruction sets unknown" in hardware_line((name, flags), threads=("1", "1"), onednn=False)


def test_hardware_line_of_this_process():
    line = hardware_line()
    assert re.match(r"hardware: .+, \d+ CPUs; .+; TensorFlow threads intra-op \d+.*, inter-op \d+.*; "
                    r"oneDNN (on|off|unknown)$", line), line


# --- tools/serve_bench.py


@pytest.fixture(scope="module")
def serve_bench():
    spec = importlib.util.spec_from_file_location("serve_bench_tool", ROOT / "tools" / "serve_bench.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


class _ToyClassifier(tf.Module):
    """Raw strings in, two "probabilities" out: the shape of an exported classifier, without a model."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def classify(self, text):
        length = tf.cast(tf.strings.length(text), tf.float32)[:, None] / 100.0
        return {"probabilities": tf.nn.softmax(tf.concat([length, -length], axis=1))}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def classify_ids(self, token_ids):
        return {"probabilities": tf.nn.softmax(tf.cast(token_ids[:, :2], tf.float32))}


@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory):
    """{kind: SavedModel directory}: a good one, one without serving_default, one whose serving_default takes ids."""
    root = tmp_path_factory.mktemp("serve-bench")
    module = _ToyClassifier()
    for kind, signatures in (("good", {"serving_default": module.classify}),
                             ("no_default", {"classify": module.classify}),
                             ("ids", {"serving_default": module.classify_ids})):
        tf.saved_model.save(module, str(root / kind), signatures=signatures)
    (root / "texts.tsv").write_text("sentence\tlabel\nfine film .\t1\nawful .\t0\n")
    (root / "empty.tsv").write_text("sentence\tlabel\n")
    return root


def test_serve_bench_runs_concurrent_clients(serve_bench, savedmodels, capsys):
    serve_bench.main([str(savedmodels / "good"), f"--text_file={savedmodels / 'texts.tsv'}", "--threads=8",
                      "--requests=2", "--rounds=1", "--batch_sizes=1,2"])
    out = capsys.readouterr().out
    assert out.startswith("hardware: ")
    assert len(re.findall(r"serving_default  batch +\d+  p50 +[0-9.]+ ms .* examples/s", out)) == 2, out
    assert out.rstrip().endswith("errors: 0")


@pytest.mark.parametrize("args, message", [
    (["{d}/missing"], "not a SavedModel directory"),
    (["{d}"], "not a SavedModel directory"),
    (["{d}/no_default"], "no serving_default signature (it has ['classify'])"),
    (["{d}/ids"], "serving_default takes ['token_ids'], not raw strings"),
    (["{d}/good", "--threads=0"], "argument --threads: expected a positive integer, got '0'"),
    (["{d}/good", "--requests=many"], "argument --requests: expected a positive integer"),
    (["{d}/good", "--batch_sizes=1,x"], "argument --batch_sizes: expected positive integers"),
    (["{d}/good", "--text_file={d}/missing.tsv"], "--text_file: {d}/missing.tsv not found"),
    (["{d}/good", "--text_file={d}/texts.tsv", "--text_column=text"], "has no column 'text'"),
    (["{d}/good", "--text_file={d}/empty.tsv"], "has no texts in column 'sentence'"),
    ([], "the following arguments are required: savedmodel_dir"),
])
def test_serve_bench_reports_bad_arguments_in_one_line(serve_bench, savedmodels, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        serve_bench.main([a.format(d=savedmodels) for a in args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(d=savedmodels) in err


def test_reference_batches_are_whole_reshuffled_epochs():
    """The PyTorch references' data order: whole batches, each epoch a new permutation, its tail dropped (as tfllm)."""
    batches = shuffled_batches(10, 3, list, seed=0)
    epochs = [[next(batches) for _ in range(3)] for _ in range(2)]
    for epoch in epochs:
        seen = [int(i) for batch in epoch for i in batch]
        assert all(len(batch) == 3 for batch in epoch) and len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert epochs[0] != epochs[1]
    again = shuffled_batches(10, 3, list, seed=0)
    assert [next(again) for _ in range(3)] == epochs[0]  # seeded: the same order again


def test_reference_answers_are_the_best_valid_span_over_all_windows():
    """tools/qa_transformers.py's decoding against brute force over every (start, end) pair of every window."""
    rng = np.random.default_rng(0)
    examples = [types.SimpleNamespace(id=f"q{i}", context="".join(rng.choice(list("abcdefgh "), 60)))
                for i in range(3)]
    rows, logits = [], []
    for window in range(7):  # question 2 gets no window: its answer is ""
        e, n = window % 2, int(rng.integers(6, 12))
        first = int(rng.integers(1, 4))  # [CLS] and question tokens first, then context up to the last token
        chars = np.sort(rng.choice(60, size=2 * (n - 1 - first), replace=False))
        offsets = [None] * first + [(int(a), int(b)) for a, b in chars.reshape(-1, 2)] + [None]
        rows.append((list(range(n)), None, 0, 0, e, offsets))
        logits.append((rng.normal(size=n + 3), rng.normal(size=n + 3)))  # + batch padding past the window

    def brute_force(max_answer_length):
        best = {}
        for (ids, _, _, _, e, offsets), (starts, ends) in zip(rows, logits):
            for s in range(len(ids)):
                for t in range(s, min(len(ids), s + max_answer_length)):
                    if offsets[s] is not None and offsets[t] is not None:
                        score = starts[s] + ends[t]
                        if score > best.get(e, (-np.inf,))[0]:
                            best[e] = (score, examples[e].context[offsets[s][0] : offsets[t][1]])
        return {x.id: best[i][1] if i in best else "" for i, x in enumerate(examples)}

    for max_answer_length in (1, 3, 30):
        assert question_answering_answers(examples, rows, logits, 20, max_answer_length) == brute_force(
            max_answer_length)
    # n_best_size 1: a window counts only if its single best start and best end form a valid span.
    one = question_answering_answers(examples, rows, logits, 1, 30)
    valid = [(starts[: len(r[0])].argmax(), ends[: len(r[0])].argmax(), r) for r, (starts, ends) in zip(rows, logits)]
    for i, example in enumerate(examples):
        spans = [(r[5][s][0], r[5][t][1], logits[k][0][s] + logits[k][1][t]) for k, (s, t, r) in enumerate(valid)
                 if r[4] == i and r[5][s] is not None and r[5][t] is not None and s <= t]
        expected = max(spans, key=lambda x: x[2]) if spans else None
        assert one[example.id] == (example.context[expected[0] : expected[1]] if expected else "")
