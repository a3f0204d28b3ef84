"""Run recipes and tools one after another in this process, as `python SCRIPT ARGS` would (tests/run_script.py).

Reads one JSON job per line on stdin: {"script", "args", "input"}; answers
each with one JSON line {"exit", "stdout", "stderr"} on the original stdout.
TensorFlow and tfllm load once for all jobs (each script alone would spend
seconds starting TensorFlow). Between jobs, as between processes:

- file descriptors 1 and 2 point at the job's own files while it runs, so
  everything it writes is captured (absl logging, print, TensorFlow's C++ log);
- the absl flags a script defined, the modules imported from its folder
  (a recipe's `common`) and Keras' session state are removed;
- `sys.argv`, `sys.stdin` and `sys.path[0]` are the script's.

As in the test workers, tf.data iterators run without the autotuning thread
(tests/tf_data_autotune.py): clearing Keras' session frees each job's.
"""

import contextlib
import gc
import io
import json
import os
import runpy
import sys
import tempfile
import traceback

import keras
import tensorflow as tf
from absl import app  # noqa: F401  (defines its own flags before the snapshot below)
from absl import flags
from absl import logging  # noqa: F401  (likewise)

import tfllm  # noqa: F401  (sets the Keras backend before the scripts import TensorFlow)  # isort: split

sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.tf_data_autotune import disable_autotune_in_iterators  # noqa: E402  (needs the checkout's root)

disable_autotune_in_iterators()

ABSL_FLAGS = set(flags.FLAGS)
MODULES = set(sys.modules)
gc.freeze()  # import-time objects out of the full collections (each job's clear_session runs one): GC time -60%


@contextlib.contextmanager
def captured_fds():
    """fds 1 and 2 (and sys.stdout/sys.stderr, which write to them) into two files; yields a reader of both."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
    texts = {}
    try:
        yield texts
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
        for name, f in (("stdout", out), ("stderr", err)):
            f.seek(0)
            texts[name] = f.read()
            f.close()


def run(script, args, stdin_text):
    """`python script args` with `stdin_text` as its input, here; its exit status."""
    sys.argv = [script, *args]
    sys.stdin = io.StringIO(stdin_text or "")
    folder = os.path.dirname(os.path.abspath(script))
    sys.path.insert(0, folder)  # as `python SCRIPT` does (recipes import their common.py)
    try:
        runpy.run_path(script, run_name="__main__")
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # a bug: reported to the test, as a traceback
        traceback.print_exc()
        return 1
    finally:
        sys.path.remove(folder)
        forget(folder)


def forget(folder):
    """Undo what a script left behind that a new process would not have."""
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - ABSL_FLAGS:
        delattr(flags.FLAGS, name)
    for name in set(sys.modules) - MODULES:  # its folder's modules define flags when imported
        path = getattr(sys.modules[name], "__file__", None) or ""
        if os.path.dirname(os.path.abspath(path)) == folder:
            del sys.modules[name]
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()  # also collects garbage (its free_memory=True)
    tf.random.set_seed(None)  # a job's keras.utils.set_random_seed would otherwise seed the next job's shuffles


def main():
    jobs, replies = sys.stdin, os.fdopen(os.dup(1), "w")
    while line := jobs.readline():
        job = json.loads(line)
        with captured_fds() as texts:
            code = run(job["script"], job["args"], job.get("input"))
        replies.write(json.dumps({"exit": code, **texts}) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
