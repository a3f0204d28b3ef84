"""What a translation run keeps beside its checkpoints, and batch translation of raw text with it."""

import json
import os

import numpy as np
import tensorflow as tf

from tfllm.models.seq2seq.seq2seq_transformer import Seq2SeqTransformer
from tfllm.tokenizers.sentence_piece import BOS_ID
from tfllm.tokenizers.sentence_piece import EOS_ID
from tfllm.tokenizers.sentence_piece import load_sentence_piece
from tfllm.tokenizers.strings import as_text
from tfllm.tokenizers.strings import token_id_lists

CONFIG_FILE = "seq2seq_config.json"


def save_run_config(model_dir, model, spm_model):
    """model_dir/seq2seq_config.json: the model config and the SentencePiece model path."""
    spec = {"model": model.get_config(), "spm_model": os.path.abspath(spm_model)}
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
        json.dump(spec, f, indent=1)


def load_run(model_dir, checkpoint=None):
    """(model, tokenizer, checkpoint path) of a recipes/translate.py run, latest checkpoint restored."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {model_dir} a recipes/translate.py --model_dir?")
    with tf.io.gfile.GFile(path) as f:
        spec = json.load(f)
    model = Seq2SeqTransformer.from_config(spec["model"])
    checkpoint = checkpoint or tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(f"{model_dir}/checkpoints: no checkpoint yet")
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    return model, load_sentence_piece(spec["spm_model"]), checkpoint


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

