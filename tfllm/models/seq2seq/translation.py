"""Batch translation of raw text with a `Seq2SeqTransformer` and its SentencePiece tokenizer."""

import numpy as np
import tensorflow as tf

from tfllm.tokenizers.sentence_piece import BOS_ID
from tfllm.tokenizers.sentence_piece import EOS_ID
from tfllm.tokenizers.strings import as_text
from tfllm.tokenizers.strings import token_id_lists


def translate_texts(model, tokenizer, texts, batch_size=64, num_beams=4, length_penalty=0.6,
                    max_source_length=None, jit_compile=False):
    """Detokenized translations of raw `texts`, in order.

    Sources are sorted by length (a batch's loop runs until its longest
    output ends) and decoded `batch_size` at a time; batches are padded to
    the full batch size and a multiple of 8 tokens, so there are few traces.
    Sources over `max_source_length` tokens are cut (default: the model's limit).
    """
    if not texts:
        return []
    max_source_length = min(max_source_length or model.max_sequence_length, model.max_sequence_length)
    ids = [row[:max_source_length] or [EOS_ID] for row in token_id_lists(tokenizer, texts)]
    order = np.argsort([len(row) for row in ids], kind="stable")
    batch_size = min(batch_size, len(ids))
    outputs = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = list(order[start:start + batch_size])
        # Source width rounded up to 8 per batch: a few traces, and short
        # batches stop early (the output budget is 2 x width + 10 tokens).
        width = min(-(-max(len(ids[i]) for i in chunk) // 8) * 8, max_source_length)
        max_new = min(2 * width + 10, model.max_sequence_length - 1)
        rows = [ids[i] for i in chunk] + [ids[chunk[0]]] * (batch_size - len(chunk))  # one shape
        source = np.zeros((batch_size, width), "int32")
        for row, tokens in enumerate(rows):
            source[row, : len(tokens)] = tokens
        generated = model.generate(source, BOS_ID, EOS_ID, max_new_tokens=max_new, num_beams=num_beams,
                                   length_penalty=length_penalty, jit_compile=jit_compile)
        for i, tokens in zip(chunk, generated):
            outputs[i] = tokens
    texts = tokenizer.detokenize(tf.ragged.constant(outputs, dtype=tf.int32, ragged_rank=1))
    return [as_text(t) for t in texts]

