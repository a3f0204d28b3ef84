"""Answer TF Serving REST `:predict` bodies with a SavedModel, in-process: what the server would reply.

Imports only tensorflow and tensorflow_text (the tokenizer ops), like a
server. `predict(saved_model, body)` mirrors TF Serving's REST semantics
(https://www.tensorflow.org/tfx/serving/api_rest):

- `{"signature_name": ..., "instances": [...]}` (row format): one item per
  example; with one named input the item is its value, else an object with
  every named input. Reply: `{"predictions": [...]}`, one item per example:
  the value when the signature has one output, else an object of all outputs.
- `{"signature_name": ..., "inputs": ...}` (columnar format): the value of
  the only input, or an object of named inputs, each a whole batch. Reply:
  `{"outputs": ...}`, the value of the only output, or an object of all outputs.
- JSON values are checked against the signature's dtypes (a number for a
  string input is an error, as in TF Serving); `{"b64": ...}` gives bytes.
- Errors come back as `{"error": message}`, never as an exception.

Usage (prints one JSON reply per body):

    python tools/rest_predict.py SAVEDMODEL_DIR '{"instances": ["a gripping film"]}' ['<body>' ...]
"""

import base64
import json
import os
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.savedmodel_cli import fail  # imports only TensorFlow
from tools.savedmodel_cli import load_savedmodel

_JSON_TYPES = {tf.string: (str,), tf.bool: (bool,)}


def _check_values(value, dtype, name):
    """Decode b64 objects and reject JSON values of the wrong type, as TF Serving's JSON parser does."""
    if isinstance(value, list):
        return [_check_values(v, dtype, name) for v in value]
    if isinstance(value, dict):
        if dtype == tf.string and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        raise ValueError(f"input `{name}`: JSON object {json.dumps(value)[:80]} is not a {dtype.name} value")
    if dtype == tf.string:
        ok = isinstance(value, str)
    elif dtype == tf.bool:
        ok = isinstance(value, bool)
    elif dtype.is_integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ValueError(f"input `{name}`: JSON value {json.dumps(value)[:80]} is not of the expected type "
                         f"{dtype.name}")
    return value


def _to_tensor(value, spec, name):
    value = _check_values(value, spec.dtype, name)
    try:
        return tf.constant(value, dtype=spec.dtype)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"input `{name}`: not a rectangular tensor ({e})") from None


def _to_json(tensor, name):
    array = tensor.numpy()
    if array.dtype == object:  # strings; outputs named *_bytes are base64, as in TF Serving
        decode = ((lambda b: {"b64": base64.b64encode(b).decode()}) if name.endswith("_bytes")
                  else (lambda b: b.decode("utf-8", "replace")))
        return json.loads(json.dumps(array.tolist(), default=decode))
    return array.tolist()


def _op_error(message):
    """The op's own message, without TF's "Graph execution error" / "Detected at node" wrapping."""
    skip = ("Graph execution error", "Detected at node", "<stack traces", " ", "\t")
    lines = [line for line in message.split("\n") if line.strip() and not line.startswith(skip)]
    return " ".join(lines).split(" [Op:")[0] if lines else message


def request_inputs(signature, body):
    """The named input tensors of a REST body (row or columnar format) for `signature`."""
    specs = signature.structured_input_signature[1]
    names = sorted(specs)
    if ("instances" in body) == ("inputs" in body):
        raise ValueError("the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise ValueError("'instances' must be a list, one item per example")
        if len(names) == 1 and not all(isinstance(r, dict) and names[0] in r for r in rows):
            columns = {names[0]: rows}
        else:
            columns = {}
            for i, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise ValueError(f"instance {i}: expected an object with the named inputs {names}")
                for name in set(row) | set(names):
                    if name not in row:
                        raise ValueError(f"instance {i}: missing named input `{name}` (inputs: {names})")
                    columns.setdefault(name, []).append(row[name])
    else:
        value = body["inputs"]
        if len(names) == 1 and not (isinstance(value, dict) and names[0] in value):
            value = {names[0]: value}
        if not isinstance(value, dict):
            raise ValueError(f"'inputs' must be an object with the named inputs {names}")
        columns = value
    missing, unknown = sorted(set(names) - set(columns)), sorted(set(columns) - set(names))
    if missing or unknown:
        raise ValueError(f"inputs {names} expected; missing: {missing}, unknown: {unknown}")
    return {name: _to_tensor(columns[name], specs[name], name) for name in names}


def predict(saved_model, body):
    """TF Serving's reply to the REST `:predict` `body` (a dict), as a dict."""
    name = body.get("signature_name", "serving_default")
    if name not in saved_model.signatures:
        return {"error": f"Serving signature name: \"{name}\" not found in signature def "
                         f"(available: {sorted(saved_model.signatures)})"}
    signature = saved_model.signatures[name]
    try:
        outputs = signature(**request_inputs(signature, body))
    except (TypeError, ValueError) as e:
        return {"error": str(e)}
    except tf.errors.OpError as e:  # a check in the graph failed
        return {"error": _op_error(e.message)}
    outputs = {k: _to_json(v, k) for k, v in sorted(outputs.items())}
    if "inputs" in body:
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    batch = {len(v) for v in outputs.values()}
    if len(batch) != 1:
        return {"error": "outputs have different 0-th dimensions; use the columnar 'inputs' format"}
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(batch.pop())]}


def main(argv):
    if len(argv) < 3:
        fail(f"usage: {argv[0]} SAVEDMODEL_DIR JSON_BODY [JSON_BODY ...]")
    saved_model = load_savedmodel(argv[1])
    for body in argv[2:]:
        print(json.dumps(predict(saved_model, json.loads(body))), flush=True)


if __name__ == "__main__":
    main(sys.argv)
