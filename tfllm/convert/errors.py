"""The one error type of the converters."""


class ConversionError(ValueError):
    """A checkpoint tfllm cannot load: an unsupported config field, or a missing/unexpected weight."""
