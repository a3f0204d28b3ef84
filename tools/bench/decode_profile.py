"""`benchmark.py decode-profile`: where one cached decoding step's time goes, against the bandwidth roofline.

`--architecture=llama` profiles the Llama-style model of `generate --architecture=llama` the same way.

`generate` reports tfllm's greedy decoding at ~40-50% of the roofline
(weight bytes per step / read bandwidth). This splits one step of the same
GPT, each part run --new_tokens times inside one compiled `while_loop` (no
Python or dispatch cost between steps), with the bytes each part must read:
- the whole step (`GptCausalLM.call_with_cache` + argmax), as `generate` runs it;
- the Transformer blocks alone (embeddings, blocks, final norm, cache update);
- the tied LM head alone (hidden state -> vocabulary logits + argmax);
- the blocks' matrix-vector products alone: the same weight shapes, nothing
  else (no attention, norms or cache), i.e. what the blocks would cost if
  they were only the weight reads they are made of;
- the blocks with a 4x longer cache: the extra time is the cost of moving
  the cache, which the roofline does not count;
- the same matrix-vector products with weight-only int8 (a quarter of the
  bytes) or bfloat16 (half) weights, converted then multiplied, or (int8)
  converted, multiplied and summed in one fusion, or (bfloat16) multiplied
  as bfloat16 x bfloat16: whether XLA's CPU kernels can turn fewer weight
  bytes into faster decoding;
- the same without XLA ("no XLA": TensorFlow's ops, oneDNN's kernels, which
  multiply bfloat16 natively on AVX512_BF16/AMX CPUs), and the whole step,
  blocks and LM head of the `cast_weights(lm, "bfloat16")` model run that way,
  as its `generate` runs them.
"""

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import Llama
from tfllm.models import LlamaCausalLM
from tfllm.models import cast_weights
from tools.bench.generate import gpt_config
from tools.bench.generate import llama_sizes
from tools.bench.matmuls import block_weight_shapes
from tools.bench.timing import print_table
from tools.bench.timing import read_bandwidth_bytes
from tools.bench.timing import spread
from tools.bench.timing import time_alternately


def decode_loop(part, lm, batch, cache_length, start, steps, jit_compile=True):
    """A compiled function running `part(token, cache, index, hidden)` for `steps` positions from `start`."""
    hidden_dim = lm.backbone.hidden_dim
    hidden_dtype = lm.backbone.token_embedding.compute_dtype

    def run():
        def body(index, cache, hidden, total):
            out, cache, hidden = part(tf.ones((batch, 1), "int32"), cache, index, hidden)
            return index + 1, cache, hidden, total + tf.cast(tf.reduce_sum(out), "float32")

        loop_vars = (tf.constant(start), lm.init_cache(batch, cache_length),
                     tf.zeros((batch, 1, hidden_dim), hidden_dtype), tf.constant(0.0))
        return tf.while_loop(lambda index, *_: index < start + steps, body, loop_vars)[-1]

    return tf.function(run, jit_compile=jit_compile)


def step_parts(lm):
    """{name: part} for `decode_loop`: the whole step, the blocks alone, the tied head alone."""
    backbone = lm.backbone

    def whole(token, cache, index, hidden):
        logits, hidden, cache = lm.call_with_cache(token, cache, index)
        return ops.argmax(logits[:, 0], -1), cache, hidden

    def blocks(token, cache, index, hidden):
        x, cache = lm.call_blocks_with_cache(token, cache, index)
        return x, cache, x

    def head(token, cache, index, hidden):
        moving = hidden + ops.cast(index, hidden.dtype) * 1e-6  # a new input each step, so nothing is hoisted
        return ops.argmax(backbone.token_embedding(moving, reverse=True)[:, 0], -1), cache, hidden

    return {"whole step": whole, "blocks": blocks, "LM head": head}


def int8_columns(w):
    """Weight-only int8 quantization of `w` [k, m]: int8 values and one float32 scale per output column."""
    scale = tf.reduce_max(tf.abs(w), axis=0) / 127.0
    return tf.Variable(tf.cast(tf.round(w / scale), tf.int8)), tf.Variable(scale)


# The blocks' matrix-vector products with float32 weights, and with weight-only int8 (1 byte per weight read)
# or bfloat16 (2 bytes) weights, the ways past the float32 roofline, written as XLA has to run them on a CPU
# without int8/bf16 matmul kernels: convert then matmul, or convert, multiply and sum in one fusion.
# {form: (weight dtype, product of activations h and weights w)}
MATVEC_FORMS = {
    "float32": ("float32", lambda h, w: tf.matmul(h, w)),
    "int8, dequantize + matmul": ("int8", lambda h, w: tf.matmul(h, tf.cast(w[0], tf.float32)) * w[1]),
    "int8, fused multiply-sum": ("int8", lambda h, w: tf.reduce_sum(tf.cast(w[0], tf.float32) * h[:, :, None], 1)
                                 * w[1]),
    "bfloat16, convert + matmul": ("bfloat16", lambda h, w: tf.matmul(h, tf.cast(w, tf.float32))),
    "bfloat16 x bfloat16": ("bfloat16", lambda h, w: tf.cast(tf.matmul(tf.cast(h, tf.bfloat16), w), tf.float32)),
}
# The forms also timed without XLA (oneDNN's kernels): {row name: form}.
NO_XLA_FORMS = {"blocks' matvecs only, no XLA": "float32",
                "matvecs, bfloat16 x bfloat16, no XLA": "bfloat16 x bfloat16"}


def matvec_loop(shapes, batch, steps, form="float32", jit_compile=True):
    """A compiled loop of `steps` rounds of [batch, k] @ W over random weights of `shapes`, nothing else."""
    dtype, product = MATVEC_FORMS[form]
    weights = [tf.random.stateless_normal(s, seed=(i, 0)) * 0.02 for i, s in enumerate(shapes)]
    weights = [int8_columns(w) if dtype == "int8" else tf.Variable(tf.cast(w, dtype)) for w in weights]
    width = shapes[0][0]

    def run():
        def body(i, x):
            h = x
            for w, (k, _) in zip(weights, shapes):  # consecutive shapes chain after cutting q/k/v's 3d outputs to d
                h = product(h[:, :k], w)
            return i + 1, x + 1e-3 * h[:, :width]

        return tf.while_loop(lambda i, x: i < steps, body, (tf.constant(0), tf.ones((batch, width))))[1]

    return tf.function(run, jit_compile=jit_compile)


def llama_block_weight_shapes(backbone):
    """[k, n] of a Llama backbone's block weights, fused so consecutive shapes chain: q/k/v, output, gate/up, down."""
    b = backbone
    attention = b.num_heads * b.head_dim
    qkv = (b.hidden_dim, attention + 2 * b.num_key_value_heads * b.head_dim)
    return [qkv, (attention, b.hidden_dim), (b.hidden_dim, 2 * b.intermediate_dim),
            (b.intermediate_dim, b.hidden_dim)] * b.num_layers


def build_model(flags):
    """The causal LM of `generate` for --architecture, and its blocks' weight shapes."""
    if flags.architecture == "llama":
        lm = LlamaCausalLM(Llama(**llama_sizes(flags), num_heads=flags.num_heads,
                                 max_sequence_length=flags.max_sequence_length))
        return lm, llama_block_weight_shapes(lm.backbone)
    return GptCausalLM(Gpt(**gpt_config(flags))), block_weight_shapes(flags.num_layers, flags.hidden_dim)


def run(flags):
    keras.utils.set_random_seed(flags.seed)
    d, n_layers, vocab = flags.hidden_dim, flags.num_layers, flags.vocabulary_size
    lm, shapes = build_model(flags)
    steps, start = flags.new_tokens, flags.prompt_length
    cache_length = start + steps
    bandwidth = read_bandwidth_bytes()
    head_bytes = 4 * vocab * d
    block_bytes = 4 * sum(a * b for a, b in shapes)
    step_bytes = head_bytes + block_bytes
    read = {"whole step": step_bytes, "LM head": head_bytes, "whole step, no XLA": step_bytes,
            "whole step, bfloat16, no XLA": step_bytes // 2, "blocks, bfloat16, no XLA": block_bytes // 2,
            "LM head, bfloat16, no XLA": head_bytes // 2}
    quantized = {f"matvecs, {form}": form for form in list(MATVEC_FORMS)[1:]}
    read.update({name: block_bytes // 4 * tf.as_dtype(MATVEC_FORMS[form][0]).size
                 for name, form in {**quantized, **NO_XLA_FORMS}.items()})
    kind = "Llama" if flags.architecture == "llama" else "GPT"
    print(f"{kind} L{n_layers} H{d} V{vocab}, {steps} steps from position {start} (cache {cache_length}); "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s; weights per step: blocks {block_bytes / 1e6:.0f} MB, "
          f"LM head {head_bytes / 1e6:.0f} MB")
    parts = step_parts(lm)
    half = cast_weights(lm, "bfloat16")
    half_parts = step_parts(half)
    for batch in sorted(map(int, flags.batch_sizes)):
        loops = {name: decode_loop(part, lm, batch, cache_length, start, steps) for name, part in parts.items()}
        loops["blocks, cache 4x longer"] = decode_loop(parts["blocks"], lm, batch, 4 * cache_length, start, steps)
        loops["blocks' matvecs only"] = matvec_loop(shapes, batch, steps)
        loops.update({name: matvec_loop(shapes, batch, steps, form) for name, form in quantized.items()})
        loops.update({name: matvec_loop(shapes, batch, steps, form, jit_compile=False)
                      for name, form in NO_XLA_FORMS.items()})
        loops["whole step, no XLA"] = decode_loop(parts["whole step"], lm, batch, cache_length, start, steps, False)
        loops.update({f"{name}, bfloat16, no XLA": decode_loop(half_parts[name], half, batch, cache_length, start,
                                                               steps, jit_compile=False) for name in half_parts})
        for loop in loops.values():
            loop()  # trace and compile
        times = time_alternately({name: lambda loop=loop: np.asarray(loop()) for name, loop in loops.items()},
                                 flags.repeats)
        rows = []
        for name, seconds in times.items():
            per_step = spread(seconds)[0] / steps
            needed = read.get(name, block_bytes)
            # The float32 model's bytes for the same part: a bf16/int8 row past 100% here beats the fp32 roofline.
            fp32_needed = block_bytes if name.startswith("matvecs") else read.get(name.split(",")[0], block_bytes)
            rows.append([batch, name, f"{per_step * 1e3:.2f}", f"{needed / bandwidth * 1e3:.2f}",
                         f"{needed / bandwidth / per_step:.0%}", f"{fp32_needed / bandwidth / per_step:.0%}",
                         f"{needed / per_step / 1e9:.1f}"])
        print()
        print_table(["batch", "part", "ms per step", "roofline ms", "of roofline", "of fp32 roofline", "weight GB/s"],
                    rows)
