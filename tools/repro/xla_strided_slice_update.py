"""XLA repro (TensorFlow only): a strided slice with a tensor index, written back by a dynamic update slice.

Why tfllm keeps this: `Seq2SeqTransformer.generate(jit_compile=True)` gave
wrong tokens because its decoding step took the previous token as
`tokens[:, index - 1:index]` and wrote that token's keys/values into the cache
with `keras.ops.slice_update` (TensorFlow's `XlaDynamicUpdateSlice`). Since
then it takes a slice of static size 1 (`ops.slice(tokens, [0, index - 1],
[batch, 1])`, as GPT's decoding already did), and XLA decodes the same tokens
as the non-XLA loop (tests/test_seq2seq.py).

What happens: in graph mode `t[:, i:i + 1]` with a tensor `i` has static shape
(2, None). Inside a `tf.while_loop` under `jit_compile=True`, XLA gives it a
bounded dynamic shape s32[2, <=6] (runtime size 1; the bound is the whole
row). The dynamic update slice then writes the padded bound, all 6 columns,
with its start clamped to 0 (6 - 6), instead of the one real column at i.
No error; the results are silently wrong. A `tf.slice` of static size 1, or
the same strided slice outside a loop, gives the right answer.

Expected (TensorFlow without XLA, and XLA with tf.slice), copying columns 0-2:
    [[20, 21, 22, 0, 0, 0], [30, 31, 32, 0, 0, 0]]
Actual (XLA with the strided slice, TensorFlow 2.21.0, CPU):
    [[22, 23, 24, 25, 0, 0], [32, 33, 34, 35, 0, 0]]
(the last step's slice t[:, 2:] padded to 6 and written at column 0).

Run: python tools/repro/xla_strided_slice_update.py  (exit 1 while the bug is present)
"""

import sys

import tensorflow as tf
from tensorflow.compiler.tf2xla.python.xla import dynamic_update_slice

TOKENS = tf.constant([[20, 21, 22, 23, 24, 25], [30, 31, 32, 33, 34, 35]], tf.int32)
EXPECTED = [[20, 21, 22, 0, 0, 0], [30, 31, 32, 0, 0, 0]]


def copy_columns(tokens, take):
    """Copy columns 0..2 of `tokens` into a zero buffer one at a time, as a cached decoding loop does."""

    def body(i, buffer):
        column = take(tokens, i)  # [2, 1]
        return i + 1, dynamic_update_slice(buffer, column, [0, i])

    return tf.while_loop(lambda i, _: i < 3, body, (tf.constant(0), tf.zeros_like(tokens)))[1]


TAKES = {
    "strided slice t[:, i:i + 1]": lambda t, i: t[:, i:i + 1],
    "tf.slice(t, [0, i], [2, 1])": lambda t, i: tf.slice(t, [0, i], [2, 1]),
}


def main():
    print("TensorFlow", tf.__version__)
    wrong = False
    for name, take in TAKES.items():
        for jit_compile in (False, True):
            out = tf.function(lambda t, take=take: copy_columns(t, take), jit_compile=jit_compile)(TOKENS)
            ok = out.numpy().tolist() == EXPECTED
            wrong |= not ok
            print(f"{name:30s} jit_compile={jit_compile!s:5s} {'ok   ' if ok else 'WRONG'} {out.numpy().tolist()}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
