"""TF Serving's directory layout and atomic SavedModel writes."""

import os
import shutil
import uuid

import tensorflow as tf


def version_dir(export_dir, model_name, version):
    """`export_dir/<model_name>/<version>/`: the layout TF Serving's --model_base_path expects."""
    if int(version) < 1:
        raise ValueError(f"--version must be a positive integer (TF Serving versions), got {version}")
    return os.path.join(export_dir, model_name, str(int(version)))


def save_atomically(save_fn, final_dir):
    """Run `save_fn(tmp_dir)`, then move tmp_dir to `final_dir` in one rename.

    TF Serving polls the model directory and loads any new version it sees, so
    a half-written SavedModel must never appear under a version number. The
    temporary directory is a hidden sibling (TF Serving ignores non-numeric
    names); an existing `final_dir` is replaced.
    """
    parent = os.path.dirname(final_dir.rstrip("/"))
    tf.io.gfile.makedirs(parent)
    tmp_dir = os.path.join(parent, f".tmp-{os.path.basename(final_dir)}-{uuid.uuid4().hex[:8]}")
    try:
        save_fn(tmp_dir)
        if tf.io.gfile.exists(final_dir):
            if "://" in final_dir:
                tf.io.gfile.rmtree(final_dir)
            else:
                shutil.rmtree(final_dir)
        if "://" in final_dir:
            tf.io.gfile.rename(tmp_dir, final_dir, overwrite=True)
        else:
            os.replace(tmp_dir, final_dir)
    finally:
        if tf.io.gfile.exists(tmp_dir):
            tf.io.gfile.rmtree(tmp_dir)
    return final_dir
