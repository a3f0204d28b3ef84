"""Python values from what tokenizers return: one string (`as_text`), token-id lists (`token_id_lists`)."""

import numpy as np
import tensorflow as tf


def as_text(value, errors="strict"):
    """`value` as `str`; for a batch (tensor, array or list), its first element."""
    value = value.numpy() if hasattr(value, "numpy") else value
    value = np.asarray(value).reshape(-1)[0] if np.ndim(value) else value
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


def token_id_lists(tokenizer, texts, batch_size=8192):
    """Token ids of each text as a list of ints, tokenized in-graph in big batches (ragged or dense outputs)."""
    ids = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(tf.constant(list(texts[start : start + batch_size])))
        ids.extend(batch.to_list() if hasattr(batch, "to_list") else [list(map(int, row)) for row in batch])
    return ids
