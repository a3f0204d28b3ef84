"""Timing helpers shared by the benchmarks: alternating timed calls, hardware ceilings, tables."""

import statistics
import time

import numpy as np
import tensorflow as tf

from tools.bench.hardware import hardware_line


def first_call_seconds(fn):
    """Seconds for the first call (tracing + compiling + one run)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_alternately(fns, repeats):
    """Call every fn once per round, `repeats` rounds; returns {name: [seconds, ...]}.

    Alternating (rather than timing one variant, then the next) spreads
    background noise over all variants, so their ratio is what can be trusted.
    """
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def spread(seconds):
    """(median, min, max) of a list of timings."""
    return statistics.median(seconds), min(seconds), max(seconds)


def matmul_peak_flops(n=2048, repeats=10):
    """fp32 FLOP/s of an n x n `tf.matmul` in a `tf.function`: this machine's practical compute ceiling."""
    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    best = min(time_alternately({"m": lambda: matmul().numpy()}, repeats)["m"])
    return 2 * n**3 / best


def read_bandwidth_bytes(megabytes=256, repeats=10):
    """Bytes/s of summing a float32 array that does not fit in cache: the ceiling for batch-1 decoding."""
    x = tf.constant(np.ones(megabytes * 2**20 // 4, "float32"))
    total = tf.function(lambda: tf.reduce_sum(x))
    total().numpy()
    best = min(time_alternately({"r": lambda: total().numpy()}, repeats)["r"])
    return megabytes * 2**20 / best


def print_table(header, rows):
    """A plain, aligned text table, under the line naming the hardware it was measured on."""
    print(hardware_line())
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
