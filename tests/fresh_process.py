"""Call a SavedModel signature the way a server does: a new process with only TF and tensorflow_text."""

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
loaded, results = {}, []
for export_dir, signature, inputs in json.loads(sys.stdin.read()):
    if export_dir not in loaded:
        loaded[export_dir] = tf.saved_model.load(export_dir)
    fn = loaded[export_dir].signatures[signature]
    specs = fn.structured_input_signature[1]
    try:
        out = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})
        results.append({k: v.numpy().tolist() for k, v in out.items()})
    except tf.errors.OpError as e:
        results.append({"error": e.message})
assert "tfllm" not in sys.modules and "keras_hub" not in sys.modules, "the server process imported tfllm"
print(json.dumps(results, default=lambda b: b.decode()))
"""


def serve_calls_in_fresh_process(calls, timeout=300):
    """Outputs (dicts of lists) of each `(export_dir, signature, inputs)` call, all in ONE new process
    (its start-up, ~8 s here, dominates); a call the graph rejects gives `{"error": message}`."""
    return _run_script(_SCRIPT, [], [(str(d), s, i) for d, s, i in calls], timeout)


def serve_in_fresh_process(export_dir, inputs, signature="serving_default", timeout=300):
    """Outputs of `signature` for `inputs` (a JSON-able dict), as lists."""
    [out] = serve_calls_in_fresh_process([(export_dir, signature, inputs)], timeout)
    if "error" in out:
        raise AssertionError(f"serving failed: {out['error']}")
    return out


_REST_SCRIPT = r"""
import importlib.util, json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
spec = importlib.util.spec_from_file_location("rest_predict", sys.argv[1])
rest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rest)
loaded, replies = {}, []
for export_dir, body in json.loads(sys.stdin.read()):
    if export_dir not in loaded:
        loaded[export_dir] = tf.saved_model.load(export_dir)
    replies.append(rest.predict(loaded[export_dir], body))
assert "tfllm" not in sys.modules and "keras_hub" not in sys.modules, "the server process imported tfllm"
print(json.dumps(replies))
"""


def rest_predict_in_fresh_process(requests, timeout=300):
    """TF Serving REST replies (dicts) to `requests`, a list of `(savedmodel_dir, JSON body)`, all in one new
    process that imports only TensorFlow and tensorflow_text (tools/rest_predict.py answers them)."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "rest_predict.py"
    return _run_script(_REST_SCRIPT, [str(tool)], [(str(d), b) for d, b in requests], timeout)


def _run_script(script, args, payload, timeout):
    """Run `script` in a new interpreter with `payload` as JSON on stdin; its last stdout line, parsed."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], input=json.dumps(payload), capture_output=True, text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"serving process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
