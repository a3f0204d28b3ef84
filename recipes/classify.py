"""Fine-tune a BERT text classifier or regressor (from scratch or a checkpoint) on single texts or text pairs,
evaluate it, export a SavedModel: every GLUE task, one command each.

    python recipes/classify.py \
        --train_file=../shared/data/sst2/train.tsv --eval_file=../shared/data/sst2/dev.tsv \
        --model_dir=runs/sst2 --export_dir=runs/sst2/export --model_name=sst2
    python recipes/classify.py --flagfile=recipes/glue/mrpc.flags --model_dir=runs/mrpc \
        [--init_checkpoint=<a Hugging Face BERT/RoBERTa/DistilBERT/ELECTRA, Google or tfllm folder>]

The files are TSV (tab-separated, no quoting) or CSV with a header row:
`--text_column` names the text, `--label_column` the label. Besides that:

- Pairs (MRPC, RTE, STS-B): `--text_b_column` names the second text; a pair
  is packed `[CLS] a [SEP] b [SEP]` with segment ids 0/1 (RoBERTa:
  `<s> a </s></s> b </s>`, all 0) and cut to `--max_seq_length`
  longest-first, as BERT and Hugging Face do (the log counts the pairs cut).
- String labels (RTE): `--label_names=entailment,not_entailment` gives each
  class a name in id order; a label in the file is one of the names or an
  integer id; anything else is an error naming file:line.
- Regression (STS-B): `--task=regression` trains one output with mean
  squared error on float labels; the export returns a `score`.
- Files without a header (CoLA): `--columns=source,label,mark,sentence`
  names the columns by position; `--text_column`/`--label_column` then pick
  from those names.

Evaluation reports, for classification, accuracy, Matthews correlation and
(two classes) F1 of class 1; for regression, Pearson and Spearman
correlation; all in the printed `eval:` line and <model_dir>/eval_results.json.
Re-running the same command resumes from the latest checkpoint in --model_dir.
The export lands in <export_dir>/<model_name>/<version>/ (TF Serving layout);
its `serving_default` signature maps raw strings (`text`, and `text_pair` for a
pair model) to class probabilities, label and label name, or to `score`.
"""

import json
import os
import time

import common
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data import classification_dataset
from tfllm.data import read_text_examples
from tfllm.metrics import classification_scores
from tfllm.metrics import regression_scores
from tfllm.models import BertClassifier
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import losses
from tfllm.training import wait_for_all_workers

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training TSV/CSV (a header row unless --columns).")
flags.DEFINE_string("eval_file", None, "Evaluation TSV/CSV with the same columns.")
flags.DEFINE_list("columns", None, "The column names of files WITHOUT a header row, in order (e.g. CoLA's "
                  "source,label,mark,sentence); default: the files' first line names them.")
flags.DEFINE_string("text_column", "sentence", "Column holding the text (the first text of a pair).")
flags.DEFINE_string("text_b_column", None, "Column holding the second text of a pair (MRPC, RTE, STS-B); "
                    "default: single texts.")
flags.DEFINE_string("label_column", "label", "Column holding the label: a class id 0..num_classes-1, one of "
                    "--label_names, or (--task=regression) a number.")
flags.DEFINE_enum("task", "classification", ["classification", "regression"], "classification: softmax over "
                  "--num_classes, cross-entropy; regression: one output, mean squared error (STS-B).")
flags.DEFINE_integer("num_classes", 2, "Number of classes (default: the number of --label_names if given).",
                     lower_bound=2)
flags.DEFINE_list("label_names", None, "Names of the classes, in id order: labels in the files may be these "
                  "names (RTE's entailment,not_entailment) or ids; the export returns them.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training rows (logged).", lower_bound=1)
flags.register_validator("label_names", lambda names: names is None or len(set(names)) == len(names),
                         "--label_names must name each class once")
flags.DEFINE_bool("bucket_by_length", True, "Training batches of texts of similar length (less padding); "
                  "--nobucket_by_length: batches of freely shuffled texts, as transformers' DataLoader.")
flags.DEFINE_enum("pooling", "cls", ["cls", "mean"], "Sentence vector: [CLS] pooler or masked mean.")
common.define_fine_tuning_flags("--train_file", "classifier", "raw strings in, probabilities and labels out",
                                dropout_help="Dropout in the encoder and before the classifier.")
common.define_common_flags(batch_size=32, learning_rate=5e-4)
flags.mark_flags_as_required(["train_file"])


def num_classes():
    """--num_classes, or the number of --label_names; they must agree when both are given."""
    if FLAGS.task == "regression":
        if FLAGS.label_names:
            raise flags.IllegalFlagValueError("--label_names is for --task=classification (regression labels "
                                              "are numbers)")
        return 1
    if not FLAGS.label_names:
        return FLAGS.num_classes
    if FLAGS["num_classes"].present and FLAGS.num_classes != len(FLAGS.label_names):
        raise flags.IllegalFlagValueError(f"--num_classes={FLAGS.num_classes} but {len(FLAGS.label_names)} "
                                          f"--label_names ({', '.join(FLAGS.label_names)})")
    return len(FLAGS.label_names)


def read(path):
    return read_text_examples(path, FLAGS.text_column, FLAGS.text_b_column, FLAGS.label_column, task=FLAGS.task,
                              label_names=FLAGS.label_names, num_classes=num_classes(), columns=FLAGS.columns)


def all_texts(texts):
    """The texts of every segment, one list (for building a vocabulary)."""
    return [t for segment in texts for t in segment] if isinstance(texts, tuple) else texts


def take(texts, n):
    return tuple(segment[:n] for segment in texts) if isinstance(texts, tuple) else texts[:n]


def predict(model, dataset):
    """The model's outputs for every example of `dataset`, in order (class logits `[N, C]` or scores `[N, 1]`)."""
    call = common.inference_fn(model)
    return np.concatenate([call(features).numpy() for features, _ in dataset])


def scores(labels, outputs):
    """The task's metrics: accuracy/F1/Matthews correlation, or Pearson/Spearman correlation."""
    if FLAGS.task == "regression":
        return regression_scores(labels, outputs[:, 0])
    return classification_scores(labels, outputs.argmax(-1), num_classes())


def main(_):
    strategy = common.setup()
    train_texts, train_labels = read(FLAGS.train_file)
    if FLAGS.max_train_examples:
        logging.info("Using the first %d of %d training rows (--max_train_examples).",
                     min(FLAGS.max_train_examples, len(train_labels)), len(train_labels))
        train_texts = take(train_texts, FLAGS.max_train_examples)
        train_labels = train_labels[: FLAGS.max_train_examples]
    preprocessor, pretrained = common.bert_preprocessor(all_texts(train_texts), strategy)
    kind = "pairs" if FLAGS.text_b_column else "examples"
    steps = common.epoch_steps(len(train_labels), f"training {kind}")
    logging.info("%d training %s, %d steps of %d", len(train_labels), kind, steps, FLAGS.batch_size)

    regression = FLAGS.task == "regression"
    with strategy.scope():
        backbone = common.bert_backbone(preprocessor, pretrained)
        model = BertClassifier(backbone, num_classes(), pooling=FLAGS.pooling, dropout=FLAGS.dropout)
        common.apply_peft(model)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=steps, warmup_steps=int(FLAGS.warmup_ratio * steps),
            **common.optimizer_options(),
        )
    common.save_run_config(model, strategy, preprocessor, labels=FLAGS.label_names,
                           serving={"task": FLAGS.task, "text_pair": bool(FLAGS.text_b_column)})
    trainer = Trainer(
        model, optimizer, losses.regression_loss if regression else losses.classification_loss,
        FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns={} if regression else {"accuracy": losses.classification_accuracy},
        **common.trainer_options(),
    )

    def train_data(ctx):
        return classification_dataset(
            train_texts, train_labels, preprocessor, ctx.get_per_replica_batch_size(FLAGS.batch_size),
            training=True, seed=FLAGS.seed, input_context=ctx, name=FLAGS.train_file,
            bucket_by_length=FLAGS.bucket_by_length,
        )

    eval_data = None
    if FLAGS.eval_file:
        eval_texts, eval_labels = read(FLAGS.eval_file)

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
        # One pass over the eval data (every worker sees all of it): the task's metrics and the training loss,
        # each example once, both from the same outputs.
        outputs = predict(model, eval_data(tf.distribute.InputContext()))
        results = dict(scores(eval_labels, outputs), loss=float(np.mean(trainer.loss_fn(eval_labels, outputs))))
        trainer.log_eval(results)
        print("eval: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items()) +
              f"  ({len(eval_labels)} examples of {FLAGS.eval_file})", flush=True)
        if is_chief(strategy):
            with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
                json.dump(dict(results, examples=len(eval_labels), step=steps), f, indent=1)
    common.export_run(strategy)
    wait_for_all_workers(strategy)  # Multi-worker: no worker exits while the chief exports.


if __name__ == "__main__":
    common.run(main)
