"""`benchmark.py generate`: greedy decoding speed, tfllm (cached and uncached) vs keras-hub GPT2CausalLM.

`--architecture=llama`: tfllm's `LlamaCausalLM` against keras-hub's
`LlamaCausalLM` (grouped-query attention, RMSNorm, RoPE, SwiGLU, untied
output), same sizes. Same configuration on both sides, random weights, the same
random prompts, greedy, no early stop. keras-hub runs as `compile()` leaves
it (Keras' `jit_compile="auto"` is off on a CPU-only machine) and, in the
"keras-hub XLA" row, the same model compiled with `jit_compile=True`, as
tfllm's loop is by default ("tfllm cached"; "tfllm cached, no XLA" is
`generate(..., jit_compile=False)`). tfllm "uncached" (--uncached, at the
smallest batch size only: at batch 8 it alone takes ~8 minutes) runs the same
compiled sampler loop but recomputes the whole (static-shape) sequence at
every step, which is what the key/value cache saves. "tfllm cached bf16"
(--bf16) is `cast_weights(lm, "bfloat16").generate(...)` (no XLA, its
default: XLA's CPU backend multiplies bfloat16 as float32), "tfllm cached
bf16, XLA" the same with `jit_compile=True`; their last column is against the
bfloat16 roofline (half the bytes), the column before against float32's.
"""

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import time

import keras
import keras_hub
import numpy as np
from keras import ops

from tfllm import generation
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import Llama
from tfllm.models import LlamaCausalLM
from tfllm.models import cast_weights
from tools.bench import torch_reference
from tools.bench.timing import first_call_seconds
from tools.bench.timing import print_table
from tools.bench.timing import read_bandwidth_bytes
from tools.bench.timing import spread
from tools.bench.timing import time_alternately


def gpt_config(flags):
    """The GPT-2-style configuration of the decoding benchmarks (`generate`, `decode-profile`)."""
    return dict(vocabulary_size=flags.vocabulary_size, num_layers=flags.num_layers, num_heads=flags.num_heads,
                hidden_dim=flags.hidden_dim, intermediate_dim=4 * flags.hidden_dim, dropout=0.0,
                max_sequence_length=flags.max_sequence_length)


def llama_sizes(flags):
    """The Llama-style sizes of the decoding benchmarks (intermediate 8/3 of the width, as Llama's)."""
    return dict(vocabulary_size=flags.vocabulary_size, num_layers=flags.num_layers, hidden_dim=flags.hidden_dim,
                intermediate_dim=8 * flags.hidden_dim // 3, num_key_value_heads=flags.num_key_value_heads)


def build_llama_models(flags):
    """tfllm's and keras-hub's LlamaCausalLM at the same size."""
    sizes = llama_sizes(flags)
    ours = LlamaCausalLM(Llama(**sizes, num_heads=flags.num_heads, max_sequence_length=flags.max_sequence_length))
    theirs = keras_hub.models.LlamaCausalLM(
        backbone=keras_hub.models.LlamaBackbone(**sizes, num_query_heads=flags.num_heads), preprocessor=None)
    theirs.compile(sampler="greedy")
    return ours, theirs, None


def with_xla(theirs):
    """A second keras-hub task over the same backbone (same weights), its generate compiled with XLA."""
    task = type(theirs)(backbone=theirs.backbone, preprocessor=None)
    task.compile(sampler="greedy", jit_compile=True)
    return task


def build_models(flags):
    keras.utils.set_random_seed(flags.seed)
    if flags.architecture == "llama":
        return build_llama_models(flags)
    config = gpt_config(flags)
    ours = GptCausalLM(Gpt(**config))
    theirs = keras_hub.models.GPT2CausalLM(backbone=keras_hub.models.GPT2Backbone(**config), preprocessor=None)
    theirs.compile(sampler="greedy")
    return ours, theirs, config


def uncached_decoder(lm):
    """The compiled greedy loop with no cache: every step is a full forward pass over the buffer."""

    def next_fn(prompt, cache, index):
        logits = lm({"token_ids": prompt, "padding_mask": ops.ones_like(prompt, dtype="bool")})
        row = ops.take(logits, index - 1, axis=1)
        return row, row, cache

    def build_cache(prompt, mask):
        return ops.zeros((1,)), generation.min_prompt_index(mask)

    return generation.CompiledDecoder(next_fn, build_cache, jit_compile=True)


def weight_bytes_per_step(lm):
    """fp32 bytes read from weights per decoding step: every parameter but the unused position rows (GPT)
    or, for an untied Llama, the input embedding table (one row is gathered; the output matrix is read)."""
    backbone = lm.backbone
    if isinstance(backbone, Gpt):
        unread = backbone.max_sequence_length * backbone.hidden_dim
    else:
        unread = 0 if backbone.tie_word_embeddings else backbone.vocabulary_size * backbone.hidden_dim
    return 4 * (lm.count_params() - unread)


def with_cpu_time(fn, seconds):
    """`fn` that also appends the process CPU seconds of each call to `seconds`.

    On a shared machine a call's wall time is mostly waiting for a CPU;
    the CPU time it used is the steadier figure (both sides run in this
    process with the same thread pools, so the ratio compares like with like).
    """

    def timed():
        start = time.process_time()
        fn()
        seconds.append(time.process_time() - start)

    return timed


def run(flags):
    ours, theirs, config = build_models(flags)
    theirs_xla = with_xla(theirs)
    half = cast_weights(ours, "bfloat16") if flags.bf16 else None
    bandwidth = read_bandwidth_bytes()
    step_bytes = weight_bytes_per_step(ours)
    kind = "Llama-style" if flags.architecture == "llama" else "GPT-2-style"
    heads = f"{flags.num_heads}/{flags.num_key_value_heads} KV" if flags.architecture == "llama" else flags.num_heads
    print(f"{kind} L{flags.num_layers} H{flags.hidden_dim} heads {heads} V{flags.vocabulary_size}: "
          f"{ours.count_params() / 1e6:.1f} M parameters; greedy, prompt {flags.prompt_length}, "
          f"{flags.new_tokens} new tokens, {flags.repeats} timed calls each")
    print(f"Measured read bandwidth {bandwidth / 1e9:.1f} GB/s; weights read per decoding step "
          f"{step_bytes / 1e6:.0f} MB -> roofline {bandwidth / step_bytes:.0f} steps/s")
    rows = []
    rng = np.random.default_rng(flags.seed)
    batch_sizes = sorted(map(int, flags.batch_sizes))
    for batch in batch_sizes:
        with_uncached = flags.uncached and batch == batch_sizes[0]
        prompts = rng.integers(1, flags.vocabulary_size, (batch, flags.prompt_length)).astype("int32")
        ids, mask, _ = generation.pad_prompts(prompts.tolist(), flags.new_tokens)
        uncached = uncached_decoder(ours)
        # Default arguments bind this batch's inputs (the lambdas are called in this iteration only).
        variants = {
            "tfllm cached": lambda prompts=prompts: ours.generate(
                prompts.tolist(), max_new_tokens=flags.new_tokens, temperature=0),
            "tfllm cached, no XLA": lambda prompts=prompts: ours.generate(
                prompts.tolist(), max_new_tokens=flags.new_tokens, temperature=0, jit_compile=False),
            "keras-hub": lambda ids=ids, mask=mask: theirs.generate(
                {"token_ids": ids, "padding_mask": mask}, stop_token_ids=None),
            "keras-hub XLA": lambda ids=ids, mask=mask: theirs_xla.generate(
                {"token_ids": ids, "padding_mask": mask}, stop_token_ids=None),
        }
        if half is not None:
            variants["tfllm cached bf16"] = lambda prompts=prompts: half.generate(
                prompts.tolist(), max_new_tokens=flags.new_tokens, temperature=0)
            variants["tfllm cached bf16, XLA"] = lambda prompts=prompts: half.generate(
                prompts.tolist(), max_new_tokens=flags.new_tokens, temperature=0, jit_compile=True)
        if flags.torch and config and (generate := torch_reference.gpt_generate(config, prompts, flags.new_tokens)):
            variants["PyTorch transformers"] = generate
        if with_uncached:
            variants["tfllm uncached"] = lambda uncached=uncached, ids=ids, mask=mask: uncached(
                ids, mask, {"temperature": 0})
        first = {name: first_call_seconds(fn) for name, fn in variants.items()}
        if with_uncached:
            cached_tokens = np.array(ours.generate(prompts.tolist(), max_new_tokens=flags.new_tokens, temperature=0))
            recomputed = np.asarray(uncached(ids, mask, {"temperature": 0}))[:, flags.prompt_length:]
            agree = float((cached_tokens == recomputed).mean())
            print(f"batch {batch}: cached and uncached tokens agree on {agree:.1%} of positions")
        cpu = {name: [] for name in variants}
        times = time_alternately({name: with_cpu_time(fn, cpu[name]) for name, fn in variants.items()}, flags.repeats)
        reference, reference_xla = spread(times["keras-hub"])[0], spread(times["keras-hub XLA"])[0]
        cpu_reference = spread(cpu["keras-hub"])[0]
        for name, seconds in times.items():
            median, low, high = spread(seconds)
            cpu_median = spread(cpu[name])[0]
            tokens_per_s = batch * flags.new_tokens / median
            roofline = batch * bandwidth / step_bytes  # new tokens/s if decoding were bound by weight reads
            rows.append([batch, name, f"{median:.3f}", f"{low:.3f}-{high:.3f}", f"{tokens_per_s:.0f}",
                         f"{reference / median:.2f}", f"{reference_xla / median:.2f}", f"{tokens_per_s / roofline:.0%}",
                         f"{cpu_median:.3f}", f"{cpu_reference / cpu_median:.2f}", f"{first[name]:.1f}",
                         f"{tokens_per_s / (2 * roofline):.0%}" if "bf16" in name else "-"])
    print()
    print_table(["batch", "variant", "median s", "min-max s", "new tok/s", "speed vs keras-hub",
                 "vs keras-hub XLA", "of bandwidth roofline", "CPU s", "CPU vs keras-hub", "first call s",
                 "of bf16 roofline"], rows)
