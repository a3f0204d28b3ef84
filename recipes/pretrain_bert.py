"""Pretrain BERT (masked LM + next-sentence prediction), then fine-tune it with classify.py.

From TFRecords made by tools/create_pretraining_data.py (static masks):

    python recipes/pretrain_bert.py --input_files='runs/data/pretrain.tfrecord*' \
        --vocab_file=runs/vocab.txt --model_dir=runs/pretrain --preset=bert_mini \
        --max_steps=10000 --num_warmup_steps=1000 --batch_size=64

or from raw text with dynamic masking (new masks and pairs every epoch):

    python recipes/pretrain_bert.py --text_files=corpus.txt --vocab_file=runs/vocab.txt ...

Text files are one sentence per line, a blank line between documents
(or running text with --split_sentences). Re-running resumes from the latest
checkpoint. At the end the model and its tokenizer are also written to
<model_dir>/pretrained/ (a folder `from_pretrained` reads). Fine-tune with the
same preset and vocabulary:

    python recipes/classify.py --preset=bert_mini --vocab_file=runs/pretrain/vocab.txt \
        --init_checkpoint=runs/pretrain ...
"""

import json
import os
import time

import common
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data import pretraining
from tfllm.models import Bert
from tfllm.models import BertPretrainer
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers import load_vocabulary
from tfllm.tokenizers.word_piece import RESERVED_TOKENS
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import losses

FLAGS = flags.FLAGS
flags.DEFINE_string("input_files", None, "Glob(s), comma-separated, of pretraining TFRecords.")
flags.DEFINE_list("text_files", None, "Raw text files instead of --input_files: dynamic masking.")
flags.DEFINE_string("eval_input_files", None, "Glob(s) of held-out pretraining TFRecords.")
flags.DEFINE_bool("split_sentences", False, "--text_files: split lines on sentence punctuation.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (tools/build_vocab.py); copied to "
                    "<model_dir>/vocab.txt for fine-tuning.")
flags.DEFINE_bool("lowercase", True, "--text_files: lower-case before WordPiece.")
flags.DEFINE_enum("preset", "bert_tiny", list(Bert.presets), "Model size.")
flags.DEFINE_float("dropout", 0.1, "Dropout in the encoder.")
flags.DEFINE_integer("max_seq_length", 128, "--text_files: tokens per pair ([CLS]/[SEP] included).",
                     lower_bound=5)
flags.DEFINE_integer("max_predictions_per_seq", 20, "--text_files: most masked tokens per pair.")
flags.DEFINE_float("masked_lm_prob", 0.15, "--text_files: fraction of tokens to predict.")
flags.DEFINE_integer("max_steps", 10000, "Optimizer updates.")
flags.DEFINE_integer("num_warmup_steps", 1000, "Linear learning-rate warmup steps.")
flags.DEFINE_integer("grad_accum_steps", 1, "Micro-batches of --batch_size summed into each update.")
flags.DEFINE_integer("eval_every", None, "Evaluate on --eval_input_files every N steps (and at the end).")
flags.DEFINE_integer("eval_steps", 0, "Eval batches per evaluation (0 = all of --eval_input_files).")
common.define_common_flags(batch_size=64, learning_rate=1e-4)
flags.DEFINE_alias("save_every", "checkpoint_every")
flags.mark_flags_as_required(["vocab_file"])
flags.register_multi_flags_validator(["input_files", "text_files"],
                                    lambda f: bool(f["input_files"]) != bool(f["text_files"]),
                                    message="give exactly one of --input_files and --text_files")

METRICS = {
    "mlm_loss": losses.masked_lm_cross_entropy,
    "mlm_accuracy": losses.masked_lm_accuracy,
    "nsp_loss": losses.next_sentence_loss,
    "nsp_accuracy": losses.next_sentence_accuracy,
}


def training_data(vocabulary):
    """The `train_dataset_fn` for the Trainer: TFRecords, or text masked on the fly."""
    if FLAGS.input_files:
        return lambda ctx: pretraining.pretraining_dataset(
            FLAGS.input_files, ctx.get_per_replica_batch_size(FLAGS.batch_size), training=True,
            seed=FLAGS.seed, input_context=ctx,
        )
    start = time.time()
    documents = pretraining.read_documents(FLAGS.text_files, FLAGS.split_sentences)
    documents = pretraining.tokenize_documents(documents, WordPieceTokenizer(vocabulary, lowercase=FLAGS.lowercase))
    logging.info("%d documents, %d sentences from %s in %.0f s", len(documents), sum(map(len, documents)),
                 ",".join(FLAGS.text_files), time.time() - start)
    vocab = pretraining.PretrainingVocab.from_tokens(vocabulary)
    return lambda ctx: pretraining.masked_text_dataset(
        documents, vocab, ctx.get_per_replica_batch_size(FLAGS.batch_size), training=True, seed=FLAGS.seed,
        input_context=ctx, max_seq_length=FLAGS.max_seq_length, masked_lm_prob=FLAGS.masked_lm_prob,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
    )


def eval_data(ctx):
    ds = pretraining.pretraining_dataset(FLAGS.eval_input_files, ctx.get_per_replica_batch_size(FLAGS.batch_size),
                                         training=False, input_context=ctx)
    return ds.take(FLAGS.eval_steps) if FLAGS.eval_steps else ds


def main(_):
    strategy = common.setup()
    vocabulary = load_vocabulary(FLAGS.vocab_file, required=RESERVED_TOKENS)  # MLM needs [MASK] too
    train_data = training_data(vocabulary)

    with strategy.scope():
        # The same shapes as classify.py builds, so its --init_checkpoint finds every weight.
        backbone = Bert.from_preset(FLAGS.preset, vocabulary_size=len(vocabulary), dropout=FLAGS.dropout,
                                    max_sequence_length=max(512, FLAGS.max_seq_length))
        model = BertPretrainer(backbone)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=FLAGS.max_steps, warmup_steps=FLAGS.num_warmup_steps,
            **common.optimizer_options(),
        )
    logging.info("BertPretrainer (%s) with %s parameters", FLAGS.preset, f"{model.count_params():,}")
    common.save_run_config(model, strategy, WordPieceTokenizer(vocabulary, lowercase=FLAGS.lowercase))
    trainer = Trainer(
        model, optimizer, losses.pretraining_loss, FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns=METRICS, grad_accum_steps=FLAGS.grad_accum_steps,
        **common.trainer_options(),
        # Dynamic masks use stateful random ops, whose iterator state cannot be
        # saved: resume then re-creates the pipeline and skips the used batches.
        checkpoint_data_iterator=bool(FLAGS.input_files),
    )

    start = time.time()
    results = trainer.train(train_data, FLAGS.max_steps, eval_dataset_fn=eval_data if FLAGS.eval_input_files else None,
                            eval_every=FLAGS.eval_every)
    seconds = time.time() - start
    for split in ("train", "eval"):
        if results[split]:
            metrics = "  ".join(f"{name} {results[split][name]:.4f}" for name in ("loss", *METRICS))
            print(f"{split}: {metrics}  (step {results['steps']}, this run trained for {seconds:.0f} s)", flush=True)
    if is_chief(strategy):
        with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "pretrain_results.json"), "w") as f:
            json.dump(dict(results, step=results["steps"], seconds=seconds), f, indent=1)
    # <model_dir> is now a folder that from_pretrained reads (BertPretrainer,
    # BertClassifier, ...; recipes/prompt_classify.py --pretrained, tools/export.py).
    common.save_run_weights(model, strategy)


if __name__ == "__main__":
    common.run(main)
