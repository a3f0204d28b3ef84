"""`benchmark.py serve`: raw strings in, class probabilities out, tfllm's SavedModels vs keras-hub's.

All sides are a BERT classifier of the same size with random weights and the
same WordPiece vocabulary (every word of the texts, plus BERT's special
tokens), tokenizing inside the graph, loaded back from a SavedModel in this
process, as a server would run them:
- tfllm, dynamic length: `tfllm.export.export_classifier` (what every recipe's
  `--export_dir` writes): each batch padded to its longest row rounded up to 8 tokens;
- tfllm, fixed length: the same with `dynamic_length=False`, every batch padded
  to the sequence length (tfllm's export before dynamic length, as keras-hub's);
- keras-hub: `BertTextClassifier` with its `BertTextClassifierPreprocessor`,
  saved with `keras.export.ExportArchive` (an endpoint that runs the
  preprocessor, then the model, then a softmax).
Requests are batches of `--batch_sizes` texts from `--serve_text_file`:
- one at a time, each request sent to every side in turn (single-client
  latency per request: p50, p90, and the p50 ratios);
- then from `--serve_clients` concurrent closed-loop clients (threads, each
  sending `--serve_client_requests` requests per round, `--serve_client_rounds`
  rounds alternating the sides; `tools/serve_bench.py`'s clients): p50/p99
  latency, throughput, and failed requests, which must be none.
No HTTP/gRPC: this is the SavedModel's own cost in one process.
"""

import os
import tempfile
import time

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
from tools.bench.train import bert_size


def export_tfllm(model, vocabulary, sequence_length, directory, dynamic_length):
    path = export_classifier(BertPreprocessor(vocabulary, sequence_length=sequence_length), model, directory,
                             model_name="tfllm_dynamic" if dynamic_length else "tfllm_fixed", warmup=False,
                             dynamic_length=dynamic_length)
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


def request_latencies(sides, requests, repeats):
    """{side: per-request seconds}: each request sent to every side in turn (the order rotating), `repeats`
    rounds, so that noise from other processes hits all sides alike."""
    latencies = {name: [] for name in sides}
    names = list(sides)
    for round_index in range(repeats):
        for i, request in enumerate(requests):
            shift = (round_index + i) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                sides[name](request).numpy()
                latencies[name].append(time.perf_counter() - start)
    return latencies


def run(flags):
    texts = read_texts(flags.serve_text_file)
    vocabulary = word_vocabulary(texts)
    layers, width, heads = bert_size(flags.serve_size)
    config = dict(vocabulary_size=len(vocabulary), num_layers=layers, num_heads=heads, hidden_dim=width,
                  intermediate_dim=4 * width, dropout=0.0, max_sequence_length=512)
    keras.utils.set_random_seed(flags.seed)
    directory = tempfile.mkdtemp(prefix="bench-serve-")
    model = BertClassifier(Bert(**config), num_classes=2)  # one model, the same weights in both tfllm exports
    sides = {
        "tfllm SavedModel, dynamic length": export_tfllm(model, vocabulary, flags.serve_sequence_length, directory,
                                                         dynamic_length=True),
        "tfllm SavedModel, fixed length": export_tfllm(model, vocabulary, flags.serve_sequence_length, directory,
                                                       dynamic_length=False),
        "keras-hub SavedModel": export_keras_hub(config, vocabulary, flags.serve_sequence_length, directory),
    }
    print(f"BERT {flags.serve_size} classifier, {len(vocabulary):,}-token vocabulary, sequence length "
          f"{flags.serve_sequence_length}; {len(texts):,} texts from {flags.serve_text_file}; "
          f"{flags.repeats} rounds of {flags.serve_requests} requests each, one client")
    rng = np.random.default_rng(flags.seed)
    rows = []
    for batch in map(int, flags.batch_sizes):
        requests = [tf.constant([texts[i] for i in rng.integers(0, len(texts), batch)])
                    for _ in range(flags.serve_requests)]
        first = {name: first_call_seconds(lambda fn=fn, requests=requests: fn(requests[0]).numpy())
                 for name, fn in sides.items()}
        latencies = request_latencies(sides, requests, flags.repeats)
        p50 = {name: np.percentile(seconds, 50) for name, seconds in latencies.items()}
        for name, seconds in latencies.items():
            rows.append([batch, name, f"{p50[name] * 1e3:.2f}", f"{np.percentile(seconds, 90) * 1e3:.2f}",
                         f"{batch / np.mean(seconds):.0f}", f"{p50['keras-hub SavedModel'] / p50[name]:.2f}",
                         f"{p50['tfllm SavedModel, fixed length'] / p50[name]:.2f}", f"{first[name]:.2f}"])
    print()
    print_table(["batch", "variant", "p50 ms", "p90 ms", "examples/s", "p50 speed vs keras-hub",
                 "p50 speed vs tfllm fixed", "first call s"], rows)
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
