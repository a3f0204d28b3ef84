"""Latency and throughput of an exported classifier under concurrent clients, and the in-graph tokenizer's share.

    python tools/export.py --model_dir=runs/sst2 --head=classifier --token_ids_signatures \
        --export_dir=runs/serving --model_name=sst2_bench
    python tools/serve_bench.py runs/serving/sst2_bench/1 --text_file=../shared/data/sst2/dev.tsv

Imports only tensorflow and tensorflow_text, like a server. `--threads`
clients each send `--requests` requests (per round, `--rounds` alternating rounds) of `--batch_sizes` texts to the
loaded signature, one after another (closed loop), after a warm-up. Reports
p50/p95/p99 request latency and examples/s for:
- `serving_default` (raw strings in: tokenizer + model),
- `classify_token_ids` (ids tokenized beforehand by the `tokenize` signature: model only),
- `tokenize` alone,
when the export has the last two (tools/export.py --token_ids_signatures).
This is the SavedModel's own cost in one process: no HTTP/gRPC, no server-side batching.
"""

import argparse
import csv
import os
import sys
import threading
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

DEFAULT_TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "not bad at all",
                 "the plot is thin but the performances carry it through to a satisfying end"]


def read_texts(path, column):
    if not path:
        return DEFAULT_TEXTS
    with open(path, encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
        return [row[column] for row in rows]


def run(fn, make_inputs, batch_size, threads, requests, warmup=5):
    """Per-request latencies (s), wall time and failed requests with `threads` concurrent closed-loop clients."""
    for i in range(warmup):
        fn(**make_inputs(i, batch_size))
    latencies = [[] for _ in range(threads)]
    errors = []
    start_barrier = threading.Barrier(threads + 1)

    def client(k):
        inputs = [make_inputs(k * requests + i, batch_size) for i in range(requests)]
        start_barrier.wait()
        for x in inputs:
            t = time.perf_counter()
            try:
                fn(**x)
            except Exception as e:  # noqa: BLE001  (counted and reported, the bench goes on)
                errors.append(f"{type(e).__name__}: {str(e)[:200]}")
                continue
            latencies[k].append(time.perf_counter() - t)

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    if errors:
        print(f"{len(errors)} of {threads * requests} requests failed; first: {errors[0]}", flush=True)
    return np.concatenate(latencies), wall, len(errors)


def report(name, batch_size, latencies, wall):
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000
    print(f"{name:>20}  batch {batch_size:>3}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  p99 {p99:7.2f} ms  "
          f"{len(latencies) * batch_size / wall:8.0f} examples/s", flush=True)
    return p50


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("savedmodel_dir")
    parser.add_argument("--text_file", help="TSV/CSV with a header; default: four built-in sentences")
    parser.add_argument("--text_column", default="sentence")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="requests per client thread")
    parser.add_argument("--batch_sizes", default="1,16")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per signature")
    args = parser.parse_args()

    texts = read_texts(args.text_file, args.text_column)
    model = tf.saved_model.load(args.savedmodel_dir)
    signatures = model.signatures
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
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        # Rounds alternate the signatures, so load from other processes hits them alike.
        results = {name: ([], 0.0) for name in runs}
        for _ in range(args.rounds):
            for name, (fn, make_inputs) in runs.items():
                latencies, wall, errors = run(fn, make_inputs, batch_size, args.threads, args.requests)
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
