"""Test processes iterate tf.data pipelines without the autotuning thread, so freeing an iterator never waits.

TensorFlow 2.21 joins an iterator's autotuning thread (`Model::OptimizeLoop`)
when the iterator is destroyed, and that thread can be in a timed wait of up
to its optimisation period (it doubles to 60 s) that the destruction does not
cut short. The test processes leave hundreds of toy iterators to the garbage
collector, which freed them at random points of later tests: one stall of
10-40 s every few tests (seen under gdb: the main thread in
`~LogicalThreadWrapper` inside `RootDataset::Iterator::~Iterator`, the
`tf_data_model` thread in `OptimizeLoop`'s wait). The full suite spent
769-864 worker-seconds with the thread and 733 without it, with every
test passing either way: autotuning picks parallelism and buffer sizes,
never values, and these pipelines are tiny.

A real run has one training iterator, freed when the process ends (which
does not wait), so the library keeps autotuning on.
"""

import tensorflow as tf

_plain_iter = tf.data.Dataset.__iter__


def _iter_without_autotune(dataset):
    options = tf.data.Options()
    options.autotune.enabled = False
    return _plain_iter(dataset.with_options(options))


def disable_autotune_in_iterators():
    """Every `iter(dataset)` in this process from now on runs without tf.data's autotuning thread."""
    tf.data.Dataset.__iter__ = _iter_without_autotune
