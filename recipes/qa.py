"""Train a BERT extractive question answerer on SQuAD v1.1 JSON, then score it with the official EM/F1.

--init_checkpoint may name a Hugging Face BERT, RoBERTa, DistilBERT or ELECTRA folder (or hf:// name).

Only the SQuAD dev file is available offline (../shared/data/README.md), so
train on its first 38 articles and evaluate on its last 10:

    python recipes/qa.py --train_file=../shared/data/squad/dev-v1.1.json \
        --train_articles=0:38 --eval_articles=38:48 --model_dir=runs/squad

Re-running the same command resumes from the latest checkpoint in --model_dir.
After training it prints exact match / F1 over the evaluation questions and
writes eval_results.json and predictions.json (question id -> answer text)
to --model_dir.
"""

import json
import os
import time

import common
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data.span_decoding import decode_answers
from tfllm.data.squad import parse_article_range
from tfllm.data.squad import read_squad
from tfllm.data.squad import squad_dataset
from tfllm.data.squad import squad_features
from tfllm.metrics import squad_scores
from tfllm.models import BertSpanQA
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import span_losses
from tfllm.training import wait_for_all_workers
from tfllm.training.trainer import means

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "SQuAD v1.1 JSON to train on.")
flags.DEFINE_string("train_articles", ":", "Articles of --train_file to train on, START:END (Python slice "
                    "of the article list), e.g. 0:38; ':' = all.")
flags.DEFINE_string("eval_file", None, "SQuAD v1.1 JSON to evaluate on. Default: --train_file, when "
                    "--eval_articles is given.")
flags.DEFINE_string("eval_articles", None, "Articles of the evaluation file, START:END, e.g. 38:48. "
                    "Default: all articles of --eval_file; no evaluation if neither flag is set.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training questions (logged).",
                     lower_bound=1)
flags.DEFINE_integer("doc_stride", 128, "Tokens between the starts of two windows of a long context.",
                     lower_bound=1)
flags.DEFINE_integer("max_query_length", 64, "Questions are cut to this many tokens (count is logged).",
                     lower_bound=1)
flags.DEFINE_integer("max_answer_length", 30, "Most tokens in a predicted answer.", lower_bound=1)
flags.DEFINE_integer("n_best_size", 20, "Candidate answers kept per question.", lower_bound=1)
common.define_fine_tuning_flags("the training contexts and questions", "span_qa",
                                "question and context in, answer out; one window of --max_seq_length tokens, long "
                                "contexts truncated", max_seq_length=384,
                                max_seq_length_help="Tokens per window: [CLS] question [SEP] context [SEP] "
                                "(RoBERTa: <s> question </s></s> context </s>).", epochs=2)
common.define_common_flags(batch_size=32, learning_rate=5e-4)
flags.register_multi_flags_validator(
    ["max_query_length", "max_seq_length"], lambda f: f["max_query_length"] + 3 < f["max_seq_length"],
    message="--max_query_length + 3 ([CLS] and two [SEP]) must be below --max_seq_length, to leave room for "
            "the context")
flags.mark_flags_as_required(["train_file"])


def read_examples(path, articles, flag):
    articles = articles or ":"
    examples = read_squad(path, parse_article_range(articles, flag))
    logging.info("%s (%s=%s): %d questions", path, flag, articles, len(examples))
    return examples


def predict_logits(trainer, features):
    """Start and end logits of every window, in order (rows padded to their batch's longest window), and the
    Trainer's loss and metrics over the windows (one pass)."""
    predict = common.inference_fn(trainer.model)
    starts, ends, totals = [], [], None
    for inputs, labels in squad_dataset(features, FLAGS.batch_size, training=False):
        outputs = predict(inputs)
        starts.extend(outputs["start_logits"].numpy())
        ends.extend(outputs["end_logits"].numpy())
        totals = trainer.add_batch_stats(totals, labels, outputs)
    return starts, ends, means(totals)


def main(_):
    strategy = common.setup()
    train_examples = read_examples(FLAGS.train_file, FLAGS.train_articles, "--train_articles")
    if FLAGS.max_train_examples:
        logging.info("Using the first %d of %d training questions (--max_train_examples).",
                     min(FLAGS.max_train_examples, len(train_examples)), len(train_examples))
        train_examples = train_examples[: FLAGS.max_train_examples]
    eval_examples = None
    if FLAGS.eval_file or FLAGS.eval_articles:
        eval_file = FLAGS.eval_file or FLAGS.train_file
        eval_examples = read_examples(eval_file, FLAGS.eval_articles, "--eval_articles")
        overlap = {e.id for e in train_examples} & {e.id for e in eval_examples}
        if overlap:
            logging.warning("%d evaluation questions are also training questions (check --train_articles "
                            "and --eval_articles); scores will be optimistic.", len(overlap))

    # Windows are packed by `squad_features`, with the preprocessor's tokenizer and special tokens.
    texts = list(dict.fromkeys(e.context for e in train_examples)) + [e.question for e in train_examples]
    preprocessor, pretrained = common.bert_preprocessor(texts, strategy)
    window = dict(max_seq_length=FLAGS.max_seq_length, doc_stride=FLAGS.doc_stride,
                  max_query_length=FLAGS.max_query_length)
    train_features = squad_features(train_examples, preprocessor, name=FLAGS.train_file, **window)
    steps = common.epoch_steps(len(train_features), "training windows")
    logging.info("%d training windows, %d steps of %d", len(train_features), steps, FLAGS.batch_size)

    with strategy.scope():
        model = BertSpanQA(common.bert_backbone(preprocessor, pretrained))
        common.apply_peft(model)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=steps, warmup_steps=int(FLAGS.warmup_ratio * steps),
            **common.optimizer_options(),
        )
    serving = dict(max_query_length=FLAGS.max_query_length, max_answer_length=FLAGS.max_answer_length)
    common.save_run_config(model, strategy, preprocessor, serving=serving)
    trainer = Trainer(
        model, optimizer, span_losses.span_loss, FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns={"start_accuracy": span_losses.start_accuracy, "end_accuracy": span_losses.end_accuracy},
        **common.trainer_options(),
    )

    def train_data(ctx):
        return squad_dataset(train_features, ctx.get_per_replica_batch_size(FLAGS.batch_size), training=True,
                             seed=FLAGS.seed, input_context=ctx, max_seq_length=FLAGS.max_seq_length)

    start = time.time()
    trainer.train(train_data, max_steps=steps)
    logging.info("Training took %.0f s", time.time() - start)
    common.save_peft_weights(model, strategy)
    common.save_run_weights(model, strategy)
    if eval_examples is not None and is_chief(strategy):
        evaluate(trainer, eval_examples, preprocessor, window, steps, eval_file)
    common.export_run(strategy)
    wait_for_all_workers(strategy)  # Multi-worker: no worker exits while the chief writes.


def evaluate(trainer, examples, preprocessor, window, steps, eval_file):
    """Window loss/accuracy, then answers decoded over all windows of each question and the official EM/F1."""
    features = squad_features(examples, preprocessor, name=eval_file, **window)
    start = time.time()
    start_logits, end_logits, window_results = predict_logits(trainer, features)
    predictions, _ = decode_answers(examples, features, start_logits, end_logits,
                                    max_answer_length=FLAGS.max_answer_length, n_best_size=FLAGS.n_best_size)
    scores = squad_scores({e.id: e.answers for e in examples}, predictions)
    trainer.log_eval(dict(window_results, exact_match=scores["exact_match"], f1=scores["f1"]))
    logging.info("Predicted %d answers from %d windows in %.0f s", len(predictions), len(features), time.time() - start)
    print(f"eval: exact_match {scores['exact_match']:.2f}  f1 {scores['f1']:.2f}  "
          f"({scores['questions']} questions of {eval_file} --eval_articles={FLAGS.eval_articles or ':'}; "
          f"window loss {window_results['loss']:.4f})", flush=True)
    results = dict(scores, step=steps, windows=len(features), eval_file=eval_file,
                   eval_articles=FLAGS.eval_articles or ":",
                   **{f"window_{name}": value for name, value in window_results.items()})
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "predictions.json"), "w") as f:
        json.dump(predictions, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    common.run(main)
