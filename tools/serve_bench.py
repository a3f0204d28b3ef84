"""Latency and throughput of an exported classifier under concurrent clients, and the in-graph tokenizer's share.

    python tools/export.py runs/sst2 runs/serving --token_ids_signatures --model_name=sst2_bench
    python tools/serve_bench.py runs/serving/sst2_bench/1 --text_file=../shared/data/sst2/dev.tsv

Imports only tensorflow and tensorflow_text, like a server (plus, from
tools/bench, the client threads and the hardware line, which import no
tfllm). `--threads` clients each send `--requests` requests (per round,
`--rounds` alternating rounds) of `--batch_sizes` texts to the loaded
signature, one after another (closed loop), after a warm-up. Reports
p50/p95/p99 request latency and examples/s for:
- `serving_default` (raw strings in: tokenizer + model),
- `classify_token_ids` (ids tokenized beforehand by the `tokenize` signature: model only),
- `tokenize` alone,
when the export has the last two (tools/export.py --token_ids_signatures).
This is the SavedModel's own cost in one process: no HTTP/gRPC, no server-side batching.
Bad arguments (a directory that is not a SavedModel, a missing column, ...)
are one line, `error: ...`, exit status 2; failed requests make it exit 1.
"""

import argparse
import csv
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench.clients import closed_loop_clients  # imports neither TensorFlow nor tfllm
from tools.bench.clients import latency_summary
from tools.bench.hardware import hardware_line

DEFAULT_TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "not bad at all",
                 "the plot is thin but the performances carry it through to a satisfying end"]


class ArgumentParser(argparse.ArgumentParser):
    """Reports bad arguments as one line, `error: ...`, exit status 2, as tfllm's recipes and tools do."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def positive_int(text):
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def batch_sizes(text):
    sizes = text.split(",")
    if not all(s.strip().isdigit() and int(s) > 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return [int(s) for s in sizes]


def read_texts(path, column, parser):
    """The `column` of a TSV/CSV with a header row, or DEFAULT_TEXTS without `path`; bad input is `parser.error`."""
    if not path:
        return DEFAULT_TEXTS
    if not os.path.isfile(path):
        parser.error(f"--text_file: {path} not found")
    with open(path, encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
        if column not in (rows.fieldnames or []):
            parser.error(f"--text_column: {path} has no column {column!r} (its header: {rows.fieldnames})")
        texts = [row[column] for row in rows if row[column]]
    if not texts:
        parser.error(f"--text_file: {path} has no texts in column {column!r}")
    return texts


def load_signatures(savedmodel_dir, parser):
    """The SavedModel's signatures; one without `serving_default(text=...)` is `parser.error`."""
    if not os.path.isfile(os.path.join(savedmodel_dir, "saved_model.pb")):
        parser.error(f"{savedmodel_dir}: not a SavedModel directory (no saved_model.pb; an export's version "
                     "folder looks like runs/serving/<model_name>/1)")
    try:
        signatures = tf.saved_model.load(savedmodel_dir).signatures
    except Exception as e:  # a directory that does not load is bad input, not a bug here
        parser.error(f"{savedmodel_dir}: cannot load the SavedModel: {type(e).__name__}: "
                     f"{(str(e).strip().splitlines() or [''])[0]}")
    if "serving_default" not in signatures:
        parser.error(f"{savedmodel_dir}: no serving_default signature (it has {sorted(signatures)})")
    inputs = signatures["serving_default"].structured_input_signature[1]
    if "text" not in inputs:
        parser.error(f"{savedmodel_dir}: serving_default takes {sorted(inputs)}, not raw strings as `text`")
    return signatures


def report(name, batch_size, latencies, wall):
    summary = latency_summary(latencies, wall, batch_size)
    print(f"{name:>20}  batch {batch_size:>3}  p50 {summary['p50']:7.2f} ms  p95 {summary['p95']:7.2f} ms  "
          f"p99 {summary['p99']:7.2f} ms  {summary['examples/s']:8.0f} examples/s", flush=True)
    return summary["p50"]


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("savedmodel_dir")
    parser.add_argument("--text_file", help="TSV/CSV with a header; default: four built-in sentences")
    parser.add_argument("--text_column", default="sentence")
    parser.add_argument("--threads", type=positive_int, default=8)
    parser.add_argument("--requests", type=positive_int, default=50, help="requests per client thread")
    parser.add_argument("--batch_sizes", type=batch_sizes, default="1,16")
    parser.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds per signature")
    args = parser.parse_args(argv)

    texts = read_texts(args.text_file, args.text_column, parser)
    signatures = load_signatures(args.savedmodel_dir, parser)
    print(hardware_line())
    print(f"{args.savedmodel_dir}: {len(texts)} texts, {args.threads} client threads x {args.rounds} rounds x "
          f"{args.requests} requests; signatures {sorted(signatures)}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)

    def text_batch(i, batch_size):
        return [texts[(i * batch_size + j) % len(texts)] for j in range(batch_size)]

    tokenize = signatures.get("tokenize")
    cache = {}

    def ids_batch(i, b):  # tokenized once, outside the timing
        key = (i * b) % len(texts), b
        if key not in cache:
            cache[key] = tokenize(text=tf.constant(text_batch(i, b)))
        return cache[key]

    runs = {"serving_default": (signatures["serving_default"], lambda i, b: {"text": tf.constant(text_batch(i, b))})}
    if "classify_token_ids" in signatures:
        # The split path must compute what the raw-string path computes.
        x = tf.constant(texts[:16])
        np.testing.assert_allclose(signatures["classify_token_ids"](**tokenize(text=x))["probabilities"],
                                   signatures["serving_default"](text=x)["probabilities"], atol=1e-6)
        runs["tokenize"] = (tokenize, runs["serving_default"][1])
        runs["classify_token_ids"] = (signatures["classify_token_ids"], ids_batch)
    failed = 0
    for batch_size in args.batch_sizes:
        # Rounds alternate the signatures, so load from other processes hits them alike.
        results = {name: ([], 0.0) for name in runs}
        for _ in range(args.rounds):
            for name, (fn, make_inputs) in runs.items():
                latencies, wall, errors = closed_loop_clients(fn, make_inputs, batch_size, args.threads,
                                                             args.requests)
                results[name] = (results[name][0] + [latencies], results[name][1] + wall)
                failed += errors
        p50 = {name: report(name, batch_size, np.concatenate(lat), wall) for name, (lat, wall) in results.items()}
        if "classify_token_ids" in p50:
            print(f"{'':>20}  batch {batch_size:>3}  tokenizer share of p50 latency: "
                  f"{1 - p50['classify_token_ids'] / p50['serving_default']:.0%}", flush=True)
    print(f"errors: {failed}", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
