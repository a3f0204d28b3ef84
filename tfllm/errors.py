"""The errors tfllm raises for bad input, as opposed to bugs.

Each is a `TfllmError`, whose message is one line that names the file, line,
flag or field at fault and what was expected. Recipes and tools print such an
error as `error: <message>` and exit with status 2 (`recipes/common.py`);
any other exception is a bug and keeps its traceback.
"""


class TfllmError(ValueError):
    """Bad input a user can fix; the message says where and what was expected."""


class DataError(TfllmError):
    """Bad input data; the message names the file, the line and what was expected."""


class ConversionError(TfllmError):
    """A checkpoint tfllm cannot load: an unsupported config field, or a missing/unexpected weight."""


class CheckpointError(TfllmError):
    """A training checkpoint that is missing, unreadable or from another model."""


class ConfigError(TfllmError):
    """A model or run config with a value tfllm cannot use; names the field and the file."""


class DivergedError(TfllmError, FloatingPointError):
    """Training stopped on a NaN/inf loss or gradients; names the step and the last good checkpoint."""
