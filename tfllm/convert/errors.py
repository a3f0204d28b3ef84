"""The one error type of the converters (defined in `tfllm.errors`)."""

from tfllm.errors import ConversionError  # noqa: F401  (re-exported)
