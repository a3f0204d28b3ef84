"""Byte-level BPE tokenizing speed on Tiny Shakespeare, as `recipes/train_gpt.py --tokenizer=bpe` tokenizes.

    python -m tools.bench.bpe_speed [--kilobytes=1115] [--vocab_size=8000]

Trains an 8,000-token GPT-2-style vocabulary on the text with HF
`tokenizers` (not timed), then times, each with a new `BytePairTokenizer`:
- recipe: `language_modeling.token_stream(text.split("\\n\\n"), tokenizer.encode,
  ...)`, the recipe's call, from building the tokenizer (tracing included);
- again: the same call once more on the same tokenizer (traced, words cached);
- tf.data: `Dataset.from_tensor_slices(documents).batch(1024).map(tokenizer.tokenize)`.
Prints MB/s of UTF-8 text, the process's CPU seconds (steadier than wall time
on a shared machine), the md5 of the ids (equal in every mode) and how many
tf.function retracing warnings TensorFlow logged.
"""

import argparse
import hashlib
import logging
import os
import tempfile
import time

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf

from tfllm.data import language_modeling as lm_data
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.byte_pair import train_byte_pair_vocabulary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = os.path.join(os.path.dirname(ROOT), "shared", "data", "tinyshakespeare", "input.txt")


class RetracingCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record):
        self.count += "retracing" in record.getMessage()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text_file", default=TEXT)
    parser.add_argument("--kilobytes", type=int, default=None, help="Only the first N thousand characters.")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--modes", default="recipe,again,tf.data")
    args = parser.parse_args()
    with open(args.text_file, encoding="utf-8") as f:
        full_text = f.read()
    text = full_text[: args.kilobytes * 1000] if args.kilobytes else full_text
    documents = text.split("\n\n")
    megabytes = len(text.encode("utf-8")) / 1e6
    vocab_dir = tempfile.mkdtemp(prefix="bpe-speed-")
    save_byte_pair_vocabulary(*train_byte_pair_vocabulary(full_text.split("\n\n"), args.vocab_size), vocab_dir)
    vocab, merges = os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt")
    retracing = RetracingCounter()
    tf.get_logger().addHandler(retracing)
    print(f"{args.text_file}: {megabytes * 1e3:.0f} KB, {len(documents)} documents; vocabulary {args.vocab_size}")

    tokenizer = None
    for mode in args.modes.split(","):
        start, cpu_start = time.time(), time.process_time()
        if mode in ("recipe", "again"):
            if mode == "recipe" or tokenizer is None:
                tokenizer = BytePairTokenizer(vocab, merges)
            ids = lm_data.token_stream(documents, tokenizer.encode, separator_id=tokenizer.end_token_id)
        elif mode == "tf.data":
            fresh = BytePairTokenizer(vocab, merges)
            ds = tf.data.Dataset.from_tensor_slices(documents).batch(1024).map(fresh.tokenize)
            parts = []
            for batch in ds:
                for row in np.split(batch.flat_values.numpy(), batch.row_splits.numpy()[1:-1]):
                    parts += [[fresh.end_token_id], row] if parts else [row]
            ids = np.concatenate(parts).astype(np.int32)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        seconds, cpu_seconds = time.time() - start, time.process_time() - cpu_start
        print(f"{mode:8s} {seconds:7.2f} s  {megabytes / seconds:6.3f} MB/s  cpu {cpu_seconds:5.2f} s  "
              f"{len(ids)} tokens  "
              f"ids md5 {hashlib.md5(np.asarray(ids, np.int32).tobytes()).hexdigest()}  "
              f"retracing warnings so far: {retracing.count}", flush=True)


if __name__ == "__main__":
    main()
