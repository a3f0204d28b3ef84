"""Call a SavedModel signature the way a server does: a new process with only TF and tensorflow_text."""

import json
import subprocess
import sys

_SCRIPT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
fn = tf.saved_model.load(sys.argv[1]).signatures[sys.argv[2]]
inputs = json.loads(sys.argv[3])
specs = fn.structured_input_signature[1]
out = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})
assert "tfllm" not in sys.modules and "keras_hub" not in sys.modules, "the server process imported tfllm"
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=lambda b: b.decode()))
"""


def serve_in_fresh_process(export_dir, inputs, signature="serving_default", timeout=300):
    """Outputs of `signature` for `inputs` (a JSON-able dict), as lists."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(export_dir), signature, json.dumps(inputs)],
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"serving process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
