"""Errors raised when input data is missing or malformed (defined in `tfllm.errors`)."""

from tfllm.errors import DataError  # noqa: F401  (re-exported: tfllm.data.errors.DataError)
