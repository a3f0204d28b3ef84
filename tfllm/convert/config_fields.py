"""Reading a checkpoint's JSON config, and checking its numbers before Keras sees them.

A zero, negative or non-numeric size in a `config.json` would otherwise
surface as a Keras or NumPy error about some weight shape, far from the
field at fault; these checks name the file and the field instead.
"""

import json
import math

import tensorflow as tf

from tfllm.errors import ConversionError

REQUIRED = object()


def read_json(path, error=ConversionError):
    """The JSON object in `path`; `error` (naming the file) if it is not valid JSON or not an object."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            value = json.loads(f.read().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object ({{...}}), found a {type(value).__name__}")
    return value


def _get(config, field, source, default, expected):
    if field not in config:
        if default is REQUIRED:
            raise ConversionError(f"{source}: {field} is missing (expected {expected})")
        return default
    return config[field]


def size(config, field, source, default=REQUIRED):
    """`config[field]` as a positive int (a whole float such as 768.0 is accepted)."""
    value = _get(config, field, source, default, "a positive integer")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not is_number or value != int(value) or value < 1:
        raise ConversionError(f"{source}: {field}={value!r} is not a valid size (expected a positive integer)")
    return int(value)


def number(config, field, source, default, valid, expected):
    """`config[field]` as a float for which `valid` holds; `expected` says what that is, for the error."""
    value = _get(config, field, source, default, expected)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
        raise ConversionError(f"{source}: {field}={value!r} is not valid (expected {expected})")
    return float(value)


def probability(config, field, source, default):
    """A dropout rate: a number in [0, 1)."""
    return number(config, field, source, default, lambda v: 0 <= v < 1, "a number in [0, 1)")


def positive(config, field, source, default):
    """A positive number (an epsilon, a standard deviation)."""
    return number(config, field, source, default, lambda v: v > 0, "a positive number")


def heads_divide(hidden, heads, hidden_field, heads_field, source):
    """The hidden size (already checked) must split evenly across the heads; the heads field is blamed."""
    if hidden % heads:
        raise ConversionError(f"{source}: {heads_field}={heads} does not divide {hidden_field}={hidden}")
