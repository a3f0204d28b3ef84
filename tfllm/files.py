"""Whole files and paths through `tf.io.gfile`, so that a local path and a `gs://` one read the same way."""

import os

import tensorflow as tf

from tfllm.errors import DataError


def is_remote(path):
    """A URL that only `tf.io.gfile` reaches (gs://, ...), not a local path that other readers may open."""
    return "://" in os.fspath(path)


def require_file(path):
    """A one-line `DataError` unless `path` is an existing file (not a folder)."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: file not found")
    if tf.io.gfile.isdir(path):
        raise DataError(f"{path}: a folder, expected a file")


def read_bytes(path):
    """The whole file at `path`, local or remote; a `DataError` if it is missing or a folder."""
    path = os.fspath(path)
    require_file(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()
