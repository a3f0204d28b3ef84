"""Call a SavedModel signature the way a server does: in a process that imports only TF and tensorflow_text.

One such process per test worker answers every call (started on first use,
ended when the tests end): TensorFlow's start-up, ~6-8 s here, would
otherwise be paid by every export test. After each request it checks that it
still has not imported tfllm or keras_hub, so exports are proven to stand
alone; each request loads its SavedModels anew.
"""

import sys
from pathlib import Path

from tests.json_lines_process import JsonLinesProcess
from tests.json_lines_process import restarted_if_dead

REST_TOOL = Path(__file__).resolve().parents[1] / "tools" / "rest_predict.py"

_SERVER = r"""
import importlib.util, json, sys, traceback
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

def rest_tool(path, tools={}):
    if path not in tools:
        spec = importlib.util.spec_from_file_location("rest_predict", path)
        tools[path] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tools[path])
    return tools[path]

def call(loaded, export_dir, signature, inputs):
    fn = loaded[export_dir].signatures[signature]
    specs = fn.structured_input_signature[1]
    try:
        out = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})
        return {k: v.numpy().tolist() for k, v in out.items()}
    except tf.errors.OpError as e:
        return {"error": e.message}

for line in sys.stdin:
    request = json.loads(line)
    try:
        loaded, results = {}, []
        for item in request["items"]:
            export_dir = item[0]
            if export_dir not in loaded:
                loaded[export_dir] = tf.saved_model.load(export_dir)
            if request["kind"] == "rest":
                results.append(rest_tool(request["tool"]).predict(loaded[export_dir], item[1]))
            else:
                results.append(call(loaded, *item))
        assert "tfllm" not in sys.modules and "keras_hub" not in sys.modules, "the server process imported tfllm"
        reply = {"results": results}
    except Exception:
        reply = {"failure": traceback.format_exc()}
    print("@reply", json.dumps(reply, default=lambda b: b.decode()), flush=True)
"""


_server = None


def _request(request, timeout):
    global _server
    _server = restarted_if_dead(_server, lambda: JsonLinesProcess([sys.executable, "-c", _SERVER], "serving process",
                                                                  reply_prefix="@reply "))
    reply = _server.request(request, timeout)
    if "failure" in reply:
        raise AssertionError(f"serving process failed:\n{reply['failure'][-3000:]}")
    return reply["results"]


def serve_calls_in_fresh_process(calls, timeout=300):
    """Outputs (dicts of lists) of each `(export_dir, signature, inputs)` call, in the TF-only process;
    a call the graph rejects gives `{"error": message}`."""
    return _request({"kind": "signature", "items": [(str(d), s, i) for d, s, i in calls]}, timeout)


def serve_in_fresh_process(export_dir, inputs, signature="serving_default", timeout=300):
    """Outputs of `signature` for `inputs` (a JSON-able dict), as lists."""
    [out] = serve_calls_in_fresh_process([(export_dir, signature, inputs)], timeout)
    if "error" in out:
        raise AssertionError(f"serving failed: {out['error']}")
    return out


def rest_predict_in_fresh_process(requests, timeout=300):
    """TF Serving REST replies (dicts) to `requests`, a list of `(savedmodel_dir, JSON body)`, answered in the
    TF-only process by tools/rest_predict.py."""
    return _request({"kind": "rest", "tool": str(REST_TOOL), "items": [(str(d), b) for d, b in requests]}, timeout)
