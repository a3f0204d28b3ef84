"""One Python string from what tokenizers return: a string tensor, bytes, a NumPy array or a list."""

import numpy as np


def as_text(value, errors="strict"):
    """`value` as `str`; for a batch (tensor, array or list), its first element."""
    value = value.numpy() if hasattr(value, "numpy") else value
    value = np.asarray(value).reshape(-1)[0] if np.ndim(value) else value
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)
