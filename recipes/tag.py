"""Train a BERT token classifier (e.g. CoNLL-2003 NER) from scratch or from a checkpoint, and evaluate it.

--init_checkpoint may name a Hugging Face BERT, RoBERTa, DistilBERT or ELECTRA folder (or hf:// name).

    python recipes/tag.py \
        --train_file=../shared/data/conll2003/train.txt --eval_file=../shared/data/conll2003/valid.txt \
        --model_dir=runs/conll --preset=bert_mini --epochs=3

Re-running the same command resumes from the latest checkpoint in --model_dir.
Tags are read from the last column of CoNLL files and trained as BIO (IOB1
files, like CoNLL-2003's, are converted). Evaluation prints entity-level
precision/recall/F1 (conlleval's exact span match), overall and per entity
type, and word accuracy, and writes them to <model_dir>/eval_results.json.
Words cut off by --max_seq_length count as predicted "O" there.
"""

import json
import os
import time

import common
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data.conll import TAG_SCHEMES
from tfllm.data.conll import load_or_save_labels
from tfllm.data.conll import read_conll
from tfllm.data.conll import to_bio
from tfllm.data.token_classification import encode_tagged_sentences
from tfllm.data.token_classification import tagging_dataset
from tfllm.data.token_classification import word_tags
from tfllm.metrics.entities import entity_scores
from tfllm.models import BertTokenClassifier
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import tagging_losses
from tfllm.training import wait_for_all_workers
from tfllm.training.trainer import means

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training file in CoNLL format (one word a line, tag in the last column).")
flags.DEFINE_string("eval_file", None, "Evaluation file in the same format.")
flags.DEFINE_enum("tag_scheme", "auto", list(TAG_SCHEMES), "Tag scheme of the files: iob1 (converted to BIO), "
                  "bio, or auto (IOB1 if any entity starts with I-).")
flags.DEFINE_integer("max_train_sentences", None, "Use only the first N training sentences (logged).",
                     lower_bound=1)
flags.DEFINE_bool("bucket_by_length", True, "Training batches of sentences of similar length (less padding); "
                  "--nobucket_by_length: batches of freely shuffled sentences, as transformers' DataLoader.")
common.define_fine_tuning_flags("the words of --train_file", "tagger", "raw sentences in, words and tags out",
                                lowercase=False, lowercase_help="off: capitals are the best NER cue",
                                dropout_help="Dropout in the encoder and before the tag layer.",
                                max_seq_length_help="Sentences are cut to this many tokens (cut words are "
                                "counted, logged, and scored as 'O').")
common.define_common_flags(batch_size=32, learning_rate=5e-4)
flags.mark_flags_as_required(["train_file"])


def read_tagged(path):
    """CoNLL sentences of `path` with BIO tags (--tag_scheme)."""
    sentences, scheme = to_bio(read_conll(path), FLAGS.tag_scheme, name=f"{path} (--tag_scheme={FLAGS.tag_scheme})")
    logging.info("%s: %d sentences, %d words, %s tags%s", path, len(sentences), sum(len(s.words) for s in sentences),
                 scheme.upper(), " (converted to BIO)" if scheme == "iob1" else "")
    return sentences


def report(scores, name):
    """Prints entity precision/recall/F1 overall and per type, and word accuracy."""
    print(f"eval: entity F1 {scores['f1']:.4f}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
          f"accuracy {scores['accuracy']:.4f}  ({scores['gold']} entities, {scores['words']} words of {name})",
          flush=True)
    for entity_type, s in scores["per_type"].items():
        print(f"  {entity_type:>8}  F1 {s['f1']:.4f}  precision {s['precision']:.4f}  recall {s['recall']:.4f}  "
              f"({s['gold']} gold, {s['predicted']} predicted)", flush=True)


def main(_):
    strategy = common.setup()
    train_sentences = read_tagged(FLAGS.train_file)
    # Read before training: a bad eval file is reported at once, not after the run.
    eval_sentences = read_tagged(FLAGS.eval_file) if FLAGS.eval_file else None
    if FLAGS.max_train_sentences:
        logging.info("Using the first %d of %d training sentences (--max_train_sentences).",
                     min(FLAGS.max_train_sentences, len(train_sentences)), len(train_sentences))
        train_sentences = train_sentences[: FLAGS.max_train_sentences]
    labels = load_or_save_labels(os.path.join(FLAGS.model_dir, "labels.txt"), train_sentences,
                                 save=is_chief(strategy))
    logging.info("%d labels: %s", len(labels), " ".join(labels))
    train_texts = [" ".join(s.words) for s in train_sentences]
    preprocessor, pretrained = common.bert_preprocessor(train_texts, strategy)
    train_encoded = encode_tagged_sentences(train_sentences, preprocessor, labels, name=FLAGS.train_file)
    steps = common.epoch_steps(len(train_sentences), "training sentences")
    logging.info("%d training sentences, %d steps of %d", len(train_sentences), steps, FLAGS.batch_size)

    with strategy.scope():
        backbone = common.bert_backbone(preprocessor, pretrained)
        model = BertTokenClassifier(backbone, len(labels), dropout=FLAGS.dropout)
        common.apply_peft(model)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=steps, warmup_steps=int(FLAGS.warmup_ratio * steps),
            **common.optimizer_options(),
        )
    common.save_run_config(model, strategy, preprocessor, labels=labels)
    trainer = Trainer(
        model, optimizer, tagging_losses.masked_token_loss, FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns={"token_accuracy": tagging_losses.token_accuracy,
                    "token_cross_entropy": tagging_losses.token_cross_entropy},
        **common.trainer_options(),
    )

    def train_data(ctx):
        return tagging_dataset(
            train_encoded, ctx.get_per_replica_batch_size(FLAGS.batch_size),
            training=True, seed=FLAGS.seed, input_context=ctx, bucket_by_length=FLAGS.bucket_by_length,
        )

    start = time.time()
    trainer.train(train_data, max_steps=steps)
    logging.info("Training took %.0f s", time.time() - start)
    common.save_peft_weights(model, strategy)
    common.save_run_weights(model, strategy)
    if FLAGS.eval_file and is_chief(strategy):
        eval_encoded = encode_tagged_sentences(eval_sentences, preprocessor, labels, name=FLAGS.eval_file)
        predicted, results = predict(trainer, eval_encoded, labels)
        trainer.log_eval(dict(results, loss=results["token_cross_entropy"]))  # train/'s loss is this mean too
        scores = entity_scores([s.tags for s in eval_sentences], predicted)
        report(scores, FLAGS.eval_file)
        with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
            json.dump(dict(scores, loss=results["token_cross_entropy"],
                           labelled_token_accuracy=results["token_accuracy"], sentences=len(eval_sentences),
                           truncated_words=eval_encoded.num_truncated_words, step=steps), f, indent=1)
    common.export_run(strategy)
    wait_for_all_workers(strategy)  # Multi-worker: no worker exits while the chief writes.


def predict(trainer, encoded, labels):
    """One pass over `encoded`: each sentence's predicted tag per word, and the Trainer's metrics over the
    labelled tokens (words within --max_seq_length)."""
    call = common.inference_fn(trainer.model)
    predictions, totals = [], None
    for features, targets in tagging_dataset(encoded, FLAGS.batch_size, training=False):
        logits = call(features)
        predictions.extend(tf.argmax(logits, axis=-1, output_type=tf.int32).numpy())
        totals = trainer.add_batch_stats(totals, targets, logits)
    return word_tags(predictions, encoded, labels), means(totals)


if __name__ == "__main__":
    common.run(main)
