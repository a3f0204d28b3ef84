"""Train a BERT text classifier (from scratch or from a checkpoint), evaluate it, export a SavedModel.

    python recipes/classify.py \
        --train_file=../shared/data/sst2/train.tsv --eval_file=../shared/data/sst2/dev.tsv \
        --model_dir=runs/sst2 --export_dir=runs/sst2/export --model_name=sst2

Re-running the same command resumes from the latest checkpoint in --model_dir.
The export lands in <export_dir>/<model_name>/<version>/ (TF Serving layout);
its `serving_default` signature maps raw strings to class probabilities.
"""

import json
import os
import time

import common
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data import classification_dataset
from tfllm.data import read_labeled_text
from tfllm.data import steps_per_epoch
from tfllm.export import export_classifier
from tfllm.models import BertClassifier
from tfllm.peft import merge_lora
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import losses
from tfllm.training import wait_for_all_workers

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training TSV/CSV with a header row.")
flags.DEFINE_string("eval_file", None, "Evaluation TSV/CSV with the same columns.")
flags.DEFINE_string("text_column", "sentence", "Column holding the text.")
flags.DEFINE_string("label_column", "label", "Column holding integer labels 0..num_classes-1.")
flags.DEFINE_integer("num_classes", 2, "Number of classes.")
flags.DEFINE_list("label_names", None, "Names of the classes, in label order (for the export).")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training rows (logged).")
flags.DEFINE_enum("pooling", "cls", ["cls", "mean"], "Sentence vector: [CLS] pooler or masked mean.")
common.define_fine_tuning_flags("--train_file", "classifier", "raw strings in, probabilities and labels out",
                                dropout_help="Dropout in the encoder and before the classifier.")
common.define_common_flags(batch_size=32, learning_rate=5e-4)
flags.mark_flags_as_required(["train_file"])


def main(_):
    strategy = common.setup()
    read = dict(text_column=FLAGS.text_column, label_column=FLAGS.label_column, num_classes=FLAGS.num_classes)
    train_texts, train_labels = read_labeled_text(FLAGS.train_file, **read)
    if FLAGS.max_train_examples:
        logging.info("Using the first %d of %d training rows (--max_train_examples).",
                     min(FLAGS.max_train_examples, len(train_texts)), len(train_texts))
        train_texts, train_labels = train_texts[: FLAGS.max_train_examples], train_labels[: FLAGS.max_train_examples]
    preprocessor, pretrained = common.bert_preprocessor(train_texts, strategy)
    steps = int(FLAGS.epochs * steps_per_epoch(len(train_texts), FLAGS.batch_size))
    logging.info("%d training examples, %d steps of %d", len(train_texts), steps, FLAGS.batch_size)

    with strategy.scope():
        backbone = common.bert_backbone(preprocessor, pretrained)
        model = BertClassifier(backbone, FLAGS.num_classes, pooling=FLAGS.pooling, dropout=FLAGS.dropout)
        common.apply_peft(model)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=steps, warmup_steps=int(FLAGS.warmup_ratio * steps),
            **common.optimizer_options(),
        )
    common.save_run_config(model, strategy, preprocessor, labels=FLAGS.label_names)
    trainer = Trainer(
        model, optimizer, losses.classification_loss, FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns={"accuracy": losses.classification_accuracy},
        **common.trainer_options(),
    )

    def train_data(ctx):
        return classification_dataset(
            train_texts, train_labels, preprocessor, ctx.get_per_replica_batch_size(FLAGS.batch_size),
            training=True, seed=FLAGS.seed, input_context=ctx, name=FLAGS.train_file,
        )

    eval_data = None
    if FLAGS.eval_file:
        eval_texts, eval_labels = read_labeled_text(FLAGS.eval_file, **read)

        def eval_data(ctx):
            return classification_dataset(
                eval_texts, eval_labels, preprocessor, ctx.get_per_replica_batch_size(FLAGS.batch_size),
                training=False, input_context=ctx, name=FLAGS.eval_file,
            )

    start = time.time()
    trainer.train(train_data, max_steps=steps)
    logging.info("Training took %.1f s", time.time() - start)
    common.save_peft_weights(model, strategy)
    common.save_run_weights(model, strategy)
    if eval_data:
        results = trainer.evaluate(eval_data)
        print(f"eval: accuracy {results['accuracy']:.4f}  loss {results['loss']:.4f}  "
              f"({len(eval_texts)} examples of {FLAGS.eval_file})", flush=True)
        if is_chief(strategy):
            with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
                json.dump(dict(results, examples=len(eval_texts), step=steps), f, indent=1)
    if FLAGS.export_dir and is_chief(strategy):
        merge_lora(model)  # Export plain kernels, no LoRA ops.
        path = export_classifier(preprocessor, model, FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                                 label_names=FLAGS.label_names)
        print(f"exported: {path}", flush=True)
    wait_for_all_workers(strategy)  # Multi-worker: no worker exits while the chief exports.


if __name__ == "__main__":
    common.run(main)
