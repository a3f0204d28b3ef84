"""`benchmark.py serve`: raw strings in, class probabilities out, tfllm's SavedModel vs keras-hub's.

Both sides are a BERT classifier of the same size with random weights and the
same WordPiece vocabulary (every word of the texts, plus BERT's special
tokens), tokenizing inside the graph, loaded back from a SavedModel in this
process, as a server would run them:
- tfllm: `tfllm.export.export_classifier` (what every recipe's `--export_dir` writes);
- keras-hub: `BertTextClassifier` with its `BertTextClassifierPreprocessor`,
  saved with `keras.export.ExportArchive` (an endpoint that runs the
  preprocessor, then the model, then a softmax).
Requests are batches of `--batch_sizes` texts from `--serve_text_file`:
- one at a time, the two sides timed alternately (single-request latency);
- then from `--serve_clients` concurrent closed-loop clients (threads, each
  sending `--serve_client_requests` requests per round, `--serve_client_rounds`
  rounds alternating the sides; `tools/serve_bench.py`'s clients): p50/p99
  latency, throughput, and failed requests, which must be none.
No HTTP/gRPC: this is the SavedModel's own cost in one process.
"""

import os
import tempfile

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfllm.export import export_classifier
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertPreprocessor
from tools.bench.clients import closed_loop_clients
from tools.bench.clients import latency_summary
from tools.bench.text import read_texts
from tools.bench.text import word_vocabulary
from tools.bench.timing import first_call_seconds
from tools.bench.timing import print_table
from tools.bench.timing import spread
from tools.bench.timing import time_alternately
from tools.bench.train import bert_size


def export_tfllm(config, vocabulary, sequence_length, directory):
    model = BertClassifier(Bert(**config), num_classes=2)
    path = export_classifier(BertPreprocessor(vocabulary, sequence_length=sequence_length), model, directory,
                             model_name="tfllm", warmup=False)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda texts: signature(text=texts)["probabilities"]


def export_keras_hub(config, vocabulary, sequence_length, directory):
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True), sequence_length=sequence_length)
    model = keras_hub.models.BertTextClassifier(keras_hub.models.BertBackbone(**config), num_classes=2,
                                                preprocessor=None)
    model(preprocessor(tf.constant(["build"])))  # ExportArchive needs built layers.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)

    def serve(text):
        return {"probabilities": tf.nn.softmax(model(preprocessor(text), training=False), axis=-1)}

    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    path = os.path.join(directory, "keras_hub")
    archive.write_out(path, verbose=False)
    loaded = tf.saved_model.load(path)
    return lambda texts: loaded.serve(texts)["probabilities"]


def serve_all(fn, requests):
    """One timed call: every request through `fn`, one after the other."""
    return lambda: [fn(r).numpy() for r in requests]


def run(flags):
    texts = read_texts(flags.serve_text_file)
    vocabulary = word_vocabulary(texts)
    layers, width, heads = bert_size(flags.serve_size)
    config = dict(vocabulary_size=len(vocabulary), num_layers=layers, num_heads=heads, hidden_dim=width,
                  intermediate_dim=4 * width, dropout=0.0, max_sequence_length=512)
    keras.utils.set_random_seed(flags.seed)
    directory = tempfile.mkdtemp(prefix="bench-serve-")
    sides = {
        "tfllm SavedModel": export_tfllm(config, vocabulary, flags.serve_sequence_length, directory),
        "keras-hub SavedModel": export_keras_hub(config, vocabulary, flags.serve_sequence_length, directory),
    }
    print(f"BERT {flags.serve_size} classifier, {len(vocabulary):,}-token vocabulary, sequence length "
          f"{flags.serve_sequence_length}; {len(texts):,} texts from {flags.serve_text_file}; "
          f"{flags.repeats} rounds of {flags.serve_requests} requests each")
    rng = np.random.default_rng(flags.seed)
    rows = []
    for batch in map(int, flags.batch_sizes):
        requests = [tf.constant([texts[i] for i in rng.integers(0, len(texts), batch)])
                    for _ in range(flags.serve_requests)]
        variants = {name: serve_all(fn, requests) for name, fn in sides.items()}
        first = {name: first_call_seconds(lambda fn=fn, requests=requests: fn(requests[0]).numpy())
                 for name, fn in sides.items()}
        times = time_alternately(variants, flags.repeats)
        reference = spread(times["keras-hub SavedModel"])[0]
        for name, seconds in times.items():
            median, low, high = spread(seconds)
            per_request = median / flags.serve_requests
            rows.append([batch, name, f"{per_request * 1e3:.1f}",
                         f"{low / flags.serve_requests * 1e3:.1f}-{high / flags.serve_requests * 1e3:.1f}",
                         f"{batch / per_request:.0f}", f"{reference / median:.2f}", f"{first[name]:.2f}"])
    print()
    print_table(["batch", "variant", "median ms/request", "min-max ms", "examples/s", "speed vs keras-hub",
                 "first call s"], rows)
    concurrent_clients(sides, texts, flags)


def concurrent_clients(sides, texts, flags):
    """p50/p99 latency and throughput of each side under `--serve_clients` concurrent clients; fails on errors."""
    clients, requests, rounds = flags.serve_clients, flags.serve_client_requests, flags.serve_client_rounds
    print(f"\n{clients} concurrent clients x {requests} requests each per round, {rounds} rounds alternating "
          "the sides")

    def text_batch(i, batch):
        return {"text": tf.constant([texts[(i * batch + j) % len(texts)] for j in range(batch)])}

    rows, failed = [], 0
    for batch in map(int, flags.batch_sizes):
        latencies, walls, errors = ({name: [] for name in sides} for _ in range(3))
        for _ in range(rounds):
            for name, fn in sides.items():
                round_latencies, wall, round_errors = closed_loop_clients(
                    lambda text, fn=fn: fn(text).numpy(), text_batch, batch, clients, requests, warmup=2)
                latencies[name].append(round_latencies)
                walls[name].append(wall)
                errors[name].append(round_errors)
        summaries = {name: latency_summary(np.concatenate(latencies[name]), sum(walls[name]), batch)
                     for name in sides}
        reference = summaries["keras-hub SavedModel"]["examples/s"] or float("nan")
        for name, summary in summaries.items():
            rows.append([batch, name, clients, f"{summary['p50']:.1f}", f"{summary['p99']:.1f}",
                         f"{summary['examples/s']:.0f}", f"{summary['examples/s'] / reference:.2f}",
                         sum(errors[name])])
            failed += sum(errors[name])
    print()
    print_table(["batch", "variant", "clients", "p50 ms", "p99 ms", "examples/s", "throughput vs keras-hub",
                 "errors"], rows)
    if failed:
        raise RuntimeError(f"serve: {failed} concurrent requests failed (the first failure is printed above)")
