"""Errors raised when input data is missing or malformed."""


class DataError(ValueError):
    """Bad input data; the message names the file, the line and what was expected."""
