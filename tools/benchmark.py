"""Side-by-side benchmarks: tfllm against keras-hub (and optionally PyTorch) in one process.

    python tools/benchmark.py generate                  # GPT-2-style L6 H384, batch 1 and 8
    python tools/benchmark.py generate --batch_sizes=1 --new_tokens=64 --repeats=3

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

flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to measure.")
flags.DEFINE_integer("prompt_length", 16, "Prompt tokens per row (generate).")
flags.DEFINE_integer("new_tokens", 128, "New tokens per row (generate).")
flags.DEFINE_integer("num_layers", 6, "Transformer layers.")
flags.DEFINE_integer("num_heads", 6, "Attention heads.")
flags.DEFINE_integer("hidden_dim", 384, "Model width.")
flags.DEFINE_integer("vocabulary_size", 50257, "Vocabulary size (GPT-2's by default).")
flags.DEFINE_integer("max_sequence_length", 1024, "Position table size.")
flags.DEFINE_integer("repeats", 5, "Timed calls per variant (after warm-up).")
flags.DEFINE_bool("uncached", True, "generate: also time tfllm without the key/value cache.")
flags.DEFINE_bool("torch", False, "Add a PyTorch/transformers reference if installed.")
flags.DEFINE_integer("seed", 0, "Seed for weights and inputs.")
FLAGS = flags.FLAGS

COMMANDS = ("generate",)


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: benchmark.py {{{'|'.join(COMMANDS)}}} [flags]; got {argv[1:]}")
    from tools.bench import generate  # noqa: PLC0415  (TensorFlow import after flag parsing)

    {"generate": generate.run}[argv[1]](FLAGS)


if __name__ == "__main__":
    app.run(main)
