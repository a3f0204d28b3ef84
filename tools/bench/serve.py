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
With `--serving_precisions=fp32,bf16,int8` the dynamic-length export is also
timed at each other precision (`tools/export.py --serving_precision`: the same
weights rebuilt in bfloat16, or quantized to int8). With `--serve_model_dir`
(a trained classifier's folder, e.g. a recipe's --model_dir) the sides are
that model exported by `tfllm.export.export_folder` at each precision (no
random model, no keras-hub or fixed-length side), and a first table gives each
precision's accuracy on every row of `--serve_text_file` (its `label` column),
its agreement with the float32 labels and its largest probability difference.
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

from tfllm.data.text_classification import read_table_column
from tfllm.export import export_classifier
from tfllm.export import export_folder
from tfllm.export.serving_precision import quantize_int8
from tfllm.export.serving_precision import resolve_serving_precision
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertPreprocessor
from tfllm.models import cast_weights
from tools.bench.clients import closed_loop_clients
from tools.bench.clients import latency_summary
from tools.bench.text import read_texts
from tools.bench.text import word_vocabulary
from tools.bench.timing import first_call_seconds
from tools.bench.timing import print_table
from tools.bench.train import bert_size

DYNAMIC, FIXED, KERAS_HUB = "tfllm SavedModel, dynamic length", "tfllm SavedModel, fixed length", "keras-hub SavedModel"


def serving_fn(path):
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda texts: signature(text=texts)["probabilities"]


def export_tfllm(model, vocabulary, sequence_length, directory, dynamic_length, name=None):
    return serving_fn(export_classifier(BertPreprocessor(vocabulary, sequence_length=sequence_length), model,
                                        directory, warmup=False, dynamic_length=dynamic_length,
                                        model_name=name or ("tfllm_dynamic" if dynamic_length else "tfllm_fixed")))


def at_precision(model, precision):
    """`model` (float32) as `tools/export.py --serving_precision` serves it: itself, rebuilt in bfloat16, or a
    copy quantized to int8 (`model` itself stays float32)."""
    if precision == "float32":
        return model
    copy = cast_weights(model, "bfloat16" if precision == "bfloat16" else "float32")
    if precision == "int8":
        quantize_int8(copy)
    return copy


def random_model_sides(texts, precisions, flags, directory):
    """The random-weight BERT classifier exported by tfllm (dynamic length at each precision, fixed length) and
    keras-hub, as {side name: texts -> probabilities}."""
    vocabulary = word_vocabulary(texts)
    layers, width, heads = bert_size(flags.serve_size)
    config = dict(vocabulary_size=len(vocabulary), num_layers=layers, num_heads=heads, hidden_dim=width,
                  intermediate_dim=4 * width, dropout=0.0, max_sequence_length=512)
    keras.utils.set_random_seed(flags.seed)
    model = BertClassifier(Bert(**config), num_classes=2)  # one model, the same weights in every tfllm export
    length = flags.serve_sequence_length
    sides = {DYNAMIC: export_tfllm(model, vocabulary, length, directory, dynamic_length=True)}
    for precision in precisions[1:]:
        sides[f"{DYNAMIC}, {precision}"] = export_tfllm(at_precision(model, precision), vocabulary, length,
                                                        directory, dynamic_length=True, name=precision)
    sides[FIXED] = export_tfllm(model, vocabulary, length, directory, dynamic_length=False)
    sides[KERAS_HUB] = export_keras_hub(config, vocabulary, length, directory)
    print(f"BERT {flags.serve_size} classifier, {len(vocabulary):,}-token vocabulary, sequence length {length}; ",
          end="")
    return sides


def model_dir_sides(model_dir, precisions, directory):
    """The trained classifier in `model_dir` exported at each precision: {"tfllm SavedModel, <p>": fn}."""
    sides = {}
    for precision in precisions:
        path = export_folder(model_dir, directory, model_name=precision, warmup=False, serving_precision=precision,
                             log=lambda line: print(f"  {line}", flush=True))
        sides[f"tfllm SavedModel, {precision}"] = serving_fn(path)
    print(f"{model_dir} (trained) exported at {', '.join(precisions)}; ", end="")
    return sides


def accuracy_table(sides, text_file, batch=32):
    """Accuracy of each side on every row of `text_file` (its `label` column), label agreement with the first
    (float32) side and the largest probability difference from it."""
    texts, labels = read_texts(text_file), np.array([int(x) for x in read_table_column(text_file, "label")])
    probabilities = {name: np.concatenate([fn(tf.constant(texts[i:i + batch])).numpy()
                                           for i in range(0, len(texts), batch)]) for name, fn in sides.items()}
    reference = next(iter(probabilities.values()))
    rows = [[name, f"{np.mean(p.argmax(-1) == labels):.4f}", f"{np.mean(p.argmax(-1) == reference.argmax(-1)):.4f}",
             f"{np.abs(p - reference).max():.2e}"] for name, p in probabilities.items()]
    print()
    print_table(["variant", "accuracy", "same label as float32", "max |p - p float32|"], rows)


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


def ratio(p50, reference, name):
    return f"{p50[reference] / p50[name]:.2f}" if reference in p50 else "-"


def run(flags):
    texts = read_texts(flags.serve_text_file)
    precisions = list(dict.fromkeys(["float32"] + [resolve_serving_precision(p) for p in flags.serving_precisions]))
    directory = tempfile.mkdtemp(prefix="bench-serve-")
    if flags.serve_model_dir:
        sides = model_dir_sides(flags.serve_model_dir, precisions, directory)
    else:
        sides = random_model_sides(texts, precisions, flags, directory)
    print(f"{len(texts):,} texts from {flags.serve_text_file}; "
          f"{flags.repeats} rounds of {flags.serve_requests} requests each, one client")
    if flags.serve_model_dir:
        accuracy_table(sides, flags.serve_text_file)
    float32 = next(iter(sides))
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
                         f"{batch / np.mean(seconds):.0f}", ratio(p50, KERAS_HUB, name), ratio(p50, FIXED, name),
                         ratio(p50, float32, name), f"{first[name]:.2f}"])
    print()
    print_table(["batch", "variant", "p50 ms", "p90 ms", "examples/s", "p50 speed vs keras-hub",
                 "p50 speed vs tfllm fixed", "p50 speed vs tfllm float32", "first call s"], rows)
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
        reference = summaries.get(KERAS_HUB, next(iter(summaries.values())))["examples/s"] or float("nan")
        for name, summary in summaries.items():
            rows.append([batch, name, clients, f"{summary['p50']:.1f}", f"{summary['p99']:.1f}",
                         f"{summary['examples/s']:.0f}", f"{summary['examples/s'] / reference:.2f}",
                         sum(errors[name])])
            failed += sum(errors[name])
    print()
    print_table(["batch", "variant", "clients", "p50 ms", "p99 ms", "examples/s",
                 "throughput vs keras-hub" if KERAS_HUB in sides else "throughput vs float32", "errors"], rows)
    if failed:
        raise RuntimeError(f"serve: {failed} concurrent requests failed (the first failure is printed above)")
