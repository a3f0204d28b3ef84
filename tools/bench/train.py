"""`benchmark.py train-bert` / `train-gpt`: training step speed, tfllm vs keras-hub, same model and batch.

tfllm runs its real training loop (`tfllm.training.Trainer`: AdamW with
clipping, the NaN guard and metrics) one update per call. keras-hub runs
`Model.train_on_batch` after `compile(optimizer=AdamW, loss=...)`, with and
without XLA (`jit_compile`), which is what `fit` runs per step. Both get the
same configuration, random weights and the same random batch.

FLOPs per token (forward + backward = 3 x forward, 2 FLOPs per multiply-add):
    BERT: 6 * N_nonembedding + 12 * L * d * T
    GPT:  6 * (N_nonembedding + V * d) + 12 * L * d * T   (the tied output projection)
where T is the sequence length; the second term is attention's two T x T
matmuls per layer. `--precisions=fp32,bf16` adds both sides under the
`mixed_bfloat16` policy (`--mixed_precision=bf16`), with their ratios to
tfllm fp32 and to keras-hub at the same policy.
"""

import os
import re
import tempfile
import time

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfllm.data import classification_dataset
from tfllm.data import read_labeled_text
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import BertPreprocessor
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models.weight_casting import dtype_policy
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import losses
from tools.bench import torch_reference
from tools.bench.matmuls import MatmulsAlone
from tools.bench.matmuls import step_matmul_shapes
from tools.bench.text import word_vocabulary
from tools.bench.timing import first_call_seconds
from tools.bench.timing import matmul_peak_flops
from tools.bench.timing import print_table
from tools.bench.timing import spread
from tools.bench.timing import time_alternately

TORCH = "PyTorch eager"
MATMULS = "the step's matmuls alone"


def bert_size(name):
    """(num_layers, hidden_dim, num_heads) of a size named like Google's BERT checkpoints: `L4_H256` (heads of
    width 64, as in BERT: 4 here) or `L1_H32_A2` (2 heads)."""
    found = re.fullmatch(r"L(\d+)_H(\d+)(?:_A(\d+))?", name)
    if not found:
        raise ValueError(f"BERT size {name!r}: expected L<layers>_H<width>[_A<heads>], e.g. L4_H256 or L1_H32_A2")
    layers, width = int(found.group(1)), int(found.group(2))
    heads = int(found.group(3)) if found.group(3) else max(1, width // 64)
    if layers < 1 or width < 1 or heads < 1 or width % heads:
        raise ValueError(f"BERT size {name!r}: layers, width and heads must be positive, width a multiple of heads")
    return layers, width, heads


def _embedding_params(model):
    return sum(int(np.prod(w.shape)) for w in model.weights if "embedding" in w.path and w.trainable)


def _trainer(model, loss_fn, global_batch_size, jit_compile=False):
    optimizer = create_optimizer(1e-4, total_steps=10_000, warmup_steps=0)
    return Trainer(model, optimizer, loss_fn, global_batch_size, tempfile.mkdtemp(prefix="bench-"),
                   log_every=10**9, checkpoint_every=10**9, jit_compile=jit_compile)


def _tfllm_step(model, loss_fn, batch, global_batch_size, jit_compile):
    """One update of the real Trainer loop per call, over a dataset repeating `batch`."""
    trainer = _trainer(model, loss_fn, global_batch_size, jit_compile)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    one = tf.constant(1, tf.int64)
    return lambda: trainer._train_fn(iterator, one)[1].numpy()


def input_wait_share(flags, config):
    """Input cost of `classification_dataset` (SST-2 train text) per batch, against a training step.

    The real pipeline (shuffle, length buckets, padding; tokenized once up
    front, as recipes/classify.py does) is timed alone for `steps` batches
    once its shuffle buffer is full; then the Trainer trains on exactly those
    batches from memory. Input time / (input + step time) bounds the share of
    a step spent waiting for input: `prefetch` overlaps the two, so the
    real wait is at most that.
    """
    path = os.path.join(os.path.dirname(flags.serve_text_file), "train.tsv")
    if not os.path.exists(path):
        print(f"input wait: {path} not found; skipped")
        return
    texts, labels = read_labeled_text(path)
    vocabulary = word_vocabulary(texts)
    preprocessor = BertPreprocessor(vocabulary, sequence_length=flags.bert_sequence_length)
    batch, steps = flags.bert_batch_size, 4 * flags.repeats
    iterator = iter(classification_dataset(texts, labels, preprocessor, batch, training=True, seed=flags.seed))
    next(iterator)  # fills the shuffle buffer (the whole data set)
    start = time.perf_counter()
    batches = [next(iterator) for _ in range(steps)]
    input_seconds = (time.perf_counter() - start) / steps
    cached = tf.data.Dataset.from_tensors(batches[0])
    for b in batches[1:]:
        cached = cached.concatenate(tf.data.Dataset.from_tensors(b))
    model = BertClassifier(Bert(**dict(config, vocabulary_size=len(vocabulary))), num_classes=2)
    trainer = _trainer(model, losses.classification_loss, batch)
    n = tf.constant(steps, tf.int64)
    trainer._train_fn(iter(cached), n)[1].numpy()  # trace and warm up
    start = time.perf_counter()
    trainer._train_fn(iter(cached), n)[1].numpy()
    step_seconds = (time.perf_counter() - start) / steps
    print(f"input (SST-2 train text, classification_dataset, batch {batch}, {steps} batches): "
          f"{input_seconds * 1e3:.1f} ms per batch alone, training step on those batches "
          f"{step_seconds * 1e3:.0f} ms -> input is at most "
          f"{input_seconds / (input_seconds + step_seconds):.1%} of a step")


# --precisions: name -> (Keras dtype policy, suffix of the variant names). bf16 is `--mixed_precision=bf16`:
# bfloat16 compute, float32 weights; both sides are built under the same policy.
PRECISIONS = {"fp32": ("float32", ""), "bf16": ("mixed_bfloat16", " bf16")}


def precision_summary(times):
    """'bf16: tfllm Trainer bf16 1.52x tfllm Trainer, 1.31x keras-hub fit bf16' for every non-fp32 precision run."""
    parts = []
    for precision, (_, suffix) in PRECISIONS.items():
        ours, theirs = f"tfllm Trainer{suffix}", f"keras-hub fit{suffix}"
        if suffix and ours in times:
            median = spread(times[ours])[0]
            parts.append(f"{precision}: {ours} {spread(times['tfllm Trainer'])[0] / median:.2f}x tfllm Trainer, "
                         f"{spread(times[theirs])[0] / median:.2f}x {theirs}")
    return "; ".join(parts)


def _keras_step(model, loss, batch, jit_compile):
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, global_clipnorm=1.0), loss=loss,
                  jit_compile=jit_compile)
    features, labels = batch
    return lambda: model.train_on_batch(features, labels)


def bert_variants(flags, size):
    layers, width, heads = bert_size(size)
    vocab = flags.bert_vocabulary_size
    config = dict(vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=width,
                  intermediate_dim=4 * width, dropout=0.1, max_sequence_length=512)
    batch, length = flags.bert_batch_size, flags.bert_sequence_length
    rng = np.random.default_rng(flags.seed)
    features = {
        "token_ids": rng.integers(1, vocab, (batch, length)).astype("int32"),
        "segment_ids": np.zeros((batch, length), "int32"),
        "padding_mask": np.ones((batch, length), bool),
    }
    labels = rng.integers(0, 2, (batch,)).astype("int32")
    keras.utils.set_random_seed(flags.seed)
    variants = {}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for precision in flags.precisions:
        policy, suffix = PRECISIONS[precision]
        for jit in ((False, True) if flags.xla else (False,)):
            with dtype_policy(policy):
                ours = BertClassifier(Bert(**config), num_classes=2)
            variants[f"tfllm Trainer{suffix}{' XLA' if jit else ''}"] = _tfllm_step(
                ours, losses.classification_loss, (features, labels), batch, jit)
        for jit in ((False, True) if flags.xla else (False,)):
            with dtype_policy(policy):
                theirs = keras_hub.models.BertTextClassifier(
                    keras_hub.models.BertBackbone(**config), num_classes=2, preprocessor=None)
            variants[f"keras-hub fit{suffix}{' XLA' if jit else ''}"] = _keras_step(
                theirs, loss, (features, labels), jit)
    if flags.torch and (step := torch_reference.bert_train_step(config, features["token_ids"], labels)):
        variants[TORCH] = step
    variants[MATMULS] = MatmulsAlone(step_matmul_shapes(batch, length, layers, width, heads))
    n_nonembedding = ours.count_params() - _embedding_params(ours)
    flops_per_token = 6 * n_nonembedding + 12 * layers * width * length
    return variants, batch * length, flops_per_token, f"BERT {size} classifier, batch {batch} x {length}", config


def gpt_variants(flags):
    layers, width, heads = flags.gpt_num_layers, flags.gpt_hidden_dim, flags.gpt_num_heads
    vocab = flags.gpt_vocabulary_size
    length, batch = flags.gpt_sequence_length, flags.gpt_batch_size
    config = dict(vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=width,
                  intermediate_dim=4 * width, dropout=0.0, max_sequence_length=1024)
    rng = np.random.default_rng(flags.seed)
    tokens = rng.integers(1, vocab, (batch, length + 1)).astype("int32")
    features = {"token_ids": tokens[:, :-1], "padding_mask": np.ones((batch, length), bool)}
    labels = tokens[:, 1:]
    keras.utils.set_random_seed(flags.seed)
    variants = {}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for precision in flags.precisions:
        policy, suffix = PRECISIONS[precision]
        for jit in ((False, True) if flags.xla else (False,)):
            with dtype_policy(policy):
                ours = GptCausalLM(Gpt(**config))
            variants[f"tfllm Trainer{suffix}{' XLA' if jit else ''}"] = _tfllm_step(
                ours, losses.token_loss, (features, labels), batch, jit)
        for jit in ((False, True) if flags.xla else (False,)):
            with dtype_policy(policy):
                theirs = keras_hub.models.GPT2CausalLM(keras_hub.models.GPT2Backbone(**config), preprocessor=None)
            variants[f"keras-hub fit{suffix}{' XLA' if jit else ''}"] = _keras_step(
                theirs, loss, (features, labels), jit)
    if flags.torch and (step := torch_reference.gpt_train_step(config, features["token_ids"])):
        variants[TORCH] = step
    variants[MATMULS] = MatmulsAlone(step_matmul_shapes(batch, length, layers, width, heads, output_width=vocab))
    n_nonembedding = ours.count_params() - _embedding_params(ours)
    flops_per_token = 6 * (n_nonembedding + vocab * width) + 12 * layers * width * length
    title = f"GPT-2-style L{layers} H{width} V{vocab}, batch {batch} x {length}"
    return variants, batch * length, flops_per_token, title


def report(variants, tokens_per_step, flops_per_token, title, flags, peak):
    print(f"\n{title}: {flops_per_token / 1e6:.1f} MFLOP per token; {flags.repeats} timed steps each")
    first = {name: first_call_seconds(fn) for name, fn in variants.items()}
    times = time_alternately(variants, flags.repeats)
    matmul_seconds = spread(times.pop(MATMULS))[0]
    reference = spread(times["keras-hub fit"])[0]
    rows = []
    for name, seconds in times.items():
        median, low, high = spread(seconds)
        tokens_per_s = tokens_per_step / median
        rows.append([name, f"{median:.3f}", f"{low:.3f}-{high:.3f}", f"{tokens_per_s:.0f}",
                     f"{reference / median:.2f}", f"{tokens_per_s * flops_per_token / peak:.0%}",
                     f"{first[name]:.1f}"])
    print_table(["variant", "median s/step", "min-max s", "tokens/s", "speed vs keras-hub fit",
                 "of matmul peak", "first step s"], rows)
    if TORCH in times:
        torch_median = spread(times[TORCH])[0]
        print("; ".join(f"{name} {torch_median / spread(seconds)[0]:.2f}x {TORCH}"
                        for name, seconds in times.items() if name.startswith("tfllm")))
    if summary := precision_summary(times):
        print(summary)
    ours = spread(times["tfllm Trainer"])[0]
    print(f"Profile: {MATMULS} (the projections, a GPT's LM head, attention's two T x T products and the "
          f"gradients of all, {variants[MATMULS].flops / 1e9:.0f} GFLOP) take {matmul_seconds:.3f} s "
          f"({variants[MATMULS].flops / matmul_seconds / 1e9:.0f} GFLOP/s): {matmul_seconds / ours:.0%} of tfllm "
          f"Trainer's step; the other {1 - matmul_seconds / ours:.0%} is the softmaxes (attention, loss) and masking, "
          "LayerNorm, GELU, dropout, the optimizer and embedding gradients")


def run(flags, command):
    peak = matmul_peak_flops(flags.peak_matmul_size)
    print(f"fp32 matmul peak ({flags.peak_matmul_size}^2 tf.matmul in a tf.function) measured now: "
          f"{peak / 1e9:.0f} GFLOP/s")
    if command == "train-bert":
        for size in flags.bert_sizes:
            *variants, config = bert_variants(flags, size)
            report(*variants, flags, peak)
        input_wait_share(flags, config)
    else:
        report(*gpt_variants(flags), flags, peak)
