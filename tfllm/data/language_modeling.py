"""Language-modelling input: text -> token stream -> shifted (input, target) blocks."""


import numpy as np
import tensorflow as tf

from tfllm.data import text_files
from tfllm.data.errors import DataError
from tfllm.errors import ConfigError


def read_text(path):
    """A UTF-8 text file as one string (without a BOM).

    Raises `DataError` naming the file for a missing or empty file, and the
    line and byte offset for bytes that are not UTF-8.
    """
    text = text_files.read_text(path)
    if not text.strip():
        raise DataError(f"{path}: no text (an empty file); expected UTF-8 text to model")
    return text


def token_stream(documents, encode, separator_id=None):
    """Concatenate encoded documents into one int32 stream, `separator_id` between documents.

    `encode(texts) -> ids of each text` takes the list of all documents, as
    tfllm tokenizers' `encode` does: an in-graph tokenizer then runs on big
    batches instead of once per document. Packing documents into one stream
    (GPT-2's <|endoftext|> convention) means no padding and every block is
    full.
    """
    documents = list(documents)
    parts = []
    for i, ids in enumerate(encode(documents) if documents else []):
        if i and separator_id is not None:
            parts.append(np.array([separator_id], np.int32))
        parts.append(np.asarray(ids, np.int32))
    return np.concatenate(parts) if parts else np.zeros((0,), np.int32)


def split_stream(stream, train_fraction, block_size=None, name="text"):
    """First `train_fraction` of the tokens for training, the rest for validation (nanoGPT's split).

    With `block_size`, raises `DataError` naming `name` (the text file) and
    the split when a split is too short for one block (`block_size + 1`
    tokens), before any training starts.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    cut = int(len(stream) * train_fraction)
    splits = stream[:cut], stream[cut:]
    if block_size is not None:
        for split, tokens in zip(["train", "validation"], splits):
            _check_one_block(tokens, block_size, name, split)
    return splits


def _check_one_block(stream, block_size, name, split):
    if len(stream) <= block_size:
        raise DataError(
            f"{name}: the {split} split has {len(stream)} tokens, fewer than one block of "
            f"block_size+1 = {block_size + 1}; expected a longer text or a smaller block_size"
        )


def _blocks(stream, block_size, offset):
    """Non-overlapping windows of block_size+1 tokens starting at `offset` (tensor ops)."""
    usable = tf.shape(stream)[0] - offset - 1
    n = usable // block_size
    starts = offset + tf.range(n) * block_size
    idx = starts[:, None] + tf.range(block_size + 1)[None, :]
    return tf.gather(stream, idx)


def lm_dataset(stream, block_size, batch_size, training, seed=0, input_context=None, name="text"):
    """(features, targets) batches for next-token prediction.

    Each block is block_size+1 consecutive tokens: inputs are the first
    block_size, targets the last block_size. Training: each pass over the
    data starts at a new random offset in [0, block_size) (so every position
    is seen at every place in a window, like nanoGPT's random windows),
    blocks are shuffled with `seed`, the dataset repeats forever, and
    `batch_size` is per replica with partial batches dropped. Evaluation:
    offset 0, in order, each block once, last partial batch kept.

    With an `input_context`, blocks are sharded across input pipelines, so no
    block is seen twice per pass across workers.

    Raises `DataError` naming `name` (the text file) and the split if the
    stream is shorter than one block.
    """
    _check_one_block(stream, block_size, name, "train" if training else "validation")
    stream = tf.constant(stream, tf.int32)

    def pass_blocks(epoch):
        blocks = _blocks(stream, block_size, tf.constant(0))
        if training:
            # A new offset and a new order every pass, both reproducible from (seed, pass).
            offset = tf.random.stateless_uniform(
                [], seed=[seed, epoch], minval=0, maxval=block_size, dtype=tf.int32
            )
            blocks = tf.random.experimental.stateless_shuffle(
                _blocks(stream, block_size, offset), seed=[seed, epoch + 1_000_003]
            )
        ds = tf.data.Dataset.from_tensor_slices(blocks)
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds

    if training:
        ds = tf.data.Dataset.range(2**62).flat_map(lambda e: pass_blocks(tf.cast(e, tf.int32)))
    else:
        ds = pass_blocks(tf.constant(0))
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(
        lambda b: ({"token_ids": b[:, :-1], "padding_mask": tf.ones_like(b[:, :-1], tf.bool)}, b[:, 1:]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)

