"""Greedy tokens of a causal LM with bfloat16 weights against float32: how often they agree.

    python -m tools.bench.greedy_agreement --model_dir=runs/char_gpt \
        --text_file=../shared/data/tinyshakespeare/input.txt --prompts=20 --new_tokens=128

The prompts are `--prompts` windows of `--prompt_chars` characters spread
evenly over the text's last `1 - --train_fraction` (the validation split of
`recipes/train_gpt.py`). Both models decode greedily with `generate`'s
defaults (float32 with XLA; the `cast_weights` copy without, see
`tfllm.models.causal_lm.cast_weights`). Two figures, since after the first
differing token the two continue from different texts:
- position-wise: the share of (prompt, position) pairs with the same token;
- prefix: the share of new tokens before each row's first divergence.
A third, that does not compound: teacher-forced, the share of positions of
`--prompts` validation windows (the context length each) where both models'
float32 logits have the same argmax, and the share where float32's top two
logits are closer than bfloat16's round-off (0.5% of the top logit). And a
control: float32 with every weight multiplied by 1 + 0.001 N(0, 1) (noise
about bfloat16's round-off), to tell the format from the model's own
sensitivity: a model whose greedy text sits on near-ties diverges either way.
"""

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import numpy as np
from absl import app
from absl import flags

from tfllm.models import cast_weights
from tfllm.models import load
from tfllm.tokenizers.strings import as_text

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined only when run: importing this module for `agreement` defines none)."""
    flags.DEFINE_string("model_dir", None, "A recipes/train_gpt.py --model_dir (or any causal LM folder).")
    flags.DEFINE_string("text_file", None, "Text the prompts are cut from (the run's --text_file).")
    flags.DEFINE_float("train_fraction", 0.9, "Prompts come from the text after this fraction (validation).")
    flags.DEFINE_integer("prompts", 20, "Number of prompts.", lower_bound=1)
    flags.DEFINE_integer("prompt_chars", 32, "Characters per prompt.", lower_bound=1)
    flags.DEFINE_integer("new_tokens", 128, "Greedy tokens per prompt.", lower_bound=1)
    flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float16"], "Weights dtype compared with float32.")


def agreement(reference, other):
    """(position-wise share of equal tokens, share of tokens before each row's first difference).

    `reference`, `other`: lists of equally long token lists (one per prompt).
    """
    a, b = np.asarray(reference), np.asarray(other)
    if a.shape != b.shape:
        raise ValueError(f"token arrays differ in shape: {a.shape} vs {b.shape}")
    same = a == b
    prefix = np.where(same.all(1), same.shape[1], np.argmin(same, axis=1))
    return float(same.mean()), float(prefix.sum() / same.size)


def evenly_spaced_prompts(text, count, length, start_fraction):
    """`count` windows of `length` characters spread evenly over `text[start_fraction * len:]`."""
    start = int(len(text) * start_fraction)
    last = len(text) - length
    if last <= start:
        raise ValueError(f"the text after {start_fraction:.0%} is shorter than one {length}-character prompt")
    step = (last - start) / count
    return [text[start + int(i * step): start + int(i * step) + length] for i in range(count)]


def teacher_forced(lm, other, windows):
    """(share of positions with the same argmax, share where `lm`'s top-2 logits are within 0.5% of the top)."""
    ids = np.asarray(windows, "int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    reference, logits = np.asarray(lm(inputs)), np.asarray(other(inputs))
    top2 = np.sort(reference, -1)[..., -2:]
    close = (top2[..., 1] - top2[..., 0]) < 0.005 * np.abs(top2[..., 1])
    return float((reference.argmax(-1) == logits.argmax(-1)).mean()), float(close.mean())


def main(_):
    with open(FLAGS.text_file, encoding="utf-8") as f:
        text = f.read()
    prompts = evenly_spaced_prompts(text, FLAGS.prompts, FLAGS.prompt_chars, FLAGS.train_fraction)
    lm = load(FLAGS.model_dir).model
    ids = [list(p.numpy()) for p in lm.tokenizer(prompts)]
    reference = lm.generate(ids, max_new_tokens=FLAGS.new_tokens, temperature=0)
    half = cast_weights(lm, FLAGS.dtype)
    other = half.generate(ids, max_new_tokens=FLAGS.new_tokens, temperature=0)
    without_xla = lm.generate(ids, max_new_tokens=FLAGS.new_tokens, temperature=0, jit_compile=False)
    positions, prefix = agreement(reference, other)
    print(f"{FLAGS.model_dir}: {FLAGS.prompts} prompts x {FLAGS.new_tokens} greedy tokens, {FLAGS.dtype} vs float32")
    print(f"position-wise agreement {positions:.1%}; before the first divergence {prefix:.1%}")
    print(f"float32 without XLA vs with: position-wise {agreement(reference, without_xla)[0]:.1%}")
    length = lm.backbone.max_sequence_length
    windows = [list(w.numpy()) for w in lm.tokenizer(evenly_spaced_prompts(text, FLAGS.prompts, length,
                                                                            FLAGS.train_fraction))]
    windows = [w[:length] for w in windows if len(w) >= length]
    same, close = teacher_forced(lm, half, windows)
    print(f"teacher-forced on {len(windows)} validation windows of {length} tokens: same argmax at {same:.1%} of "
          f"positions; float32's top two logits within 0.5% at {close:.1%}")
    noisy = cast_weights(lm, "float32")
    rng = np.random.default_rng(0)
    for weight in noisy.weights:
        value = np.asarray(weight)
        weight.assign((value * (1 + 1e-3 * rng.standard_normal(value.shape))).astype(value.dtype))
    control = agreement(reference, noisy.generate(ids, max_new_tokens=FLAGS.new_tokens, temperature=0))
    print(f"control, float32 with weights x (1 + 0.001 N(0, 1)): position-wise {control[0]:.1%}; "
          f"before the first divergence {control[1]:.1%}")
    first = next((i for i, (r, o) in enumerate(zip(reference, other)) if r != o), None)
    if first is not None:
        for name, tokens in (("float32", reference), (FLAGS.dtype, other)):
            print(f"first differing row, {name}: {as_text(lm.tokenizer.detokenize([tokens[first]]))!r}")


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["model_dir", "text_file"])
    app.run(main)
