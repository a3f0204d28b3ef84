"""The PyTorch/`transformers` reference for recipes/qa.py (SQuAD v1.1): same questions, checkpoint and settings.

    python tools/qa_transformers.py --train_file=../shared/data/squad/dev-v1.1.json \
        --train_articles=0:38 --eval_articles=38:48 --init_checkpoint=<Hugging Face BERT folder>

reads the questions with qa.py's reader (`read_squad`, the same article
ranges and `--max_train_examples`) and fine-tunes
`transformers.BertForQuestionAnswering` as Hugging Face's `run_qa.py` does:
fast tokenizer, question first, context windows of `--max_seq_length` tokens
(`truncation="only_second"`, overflowing windows with `stride=--doc_stride`:
HF's stride is the overlap of two windows where qa.py's is the distance of
their starts, so contexts longer than a window are cut differently), each
window labelled with the answer's first and last tokens or [CLS] when the
answer is not wholly inside (`torch_reference.question_answering_windows`;
questions are cut to `--max_query_length` pieces first, as qa.py does),
batches shuffled each epoch and padded to their longest window, the shared
PyTorch loop (`tools/bench/torch_reference.py`). Answers as run_qa.py's
`postprocess_qa_predictions`: over all windows of a question, the best
start + end logit sum of the `--n_best_size` best starts and ends of each
window with both ends in the context, end >= start and at most
`--max_answer_length` tokens; the text is the context's characters from the
offsets. Prints qa.py's `eval:` line (official EM/F1, `tfllm.metrics`; the
window loss over each window's own tokens) and the wall time of training.
"""

import os
import sys

import numpy as np
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools.bench, run as a script

from tfllm.cli import run  # noqa: E402
from tfllm.data.squad import parse_article_range  # noqa: E402
from tfllm.data.squad import read_squad  # noqa: E402
from tfllm.errors import ConfigError  # noqa: E402
from tfllm.metrics import squad_scores  # noqa: E402
from tools.bench import torch_reference  # noqa: E402  (the shared PyTorch fine-tuning loop)

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "SQuAD v1.1 JSON to train on (as recipes/qa.py).", required=True)
flags.DEFINE_string("train_articles", ":", "Articles of --train_file to train on, START:END; ':' = all.")
flags.DEFINE_string("eval_file", None, "SQuAD v1.1 JSON to evaluate on. Default: --train_file, when "
                    "--eval_articles is given.")
flags.DEFINE_string("eval_articles", None, "Articles of the evaluation file, START:END. Default: all articles "
                    "of --eval_file; no evaluation if neither flag is set.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training questions.")
flags.DEFINE_integer("max_seq_length", 384, "Tokens per window: [CLS] question [SEP] context [SEP].")
flags.DEFINE_integer("doc_stride", 128, "Passed to the tokenizer as `stride` (the overlap of windows), as run_qa.py.")
flags.DEFINE_integer("max_query_length", 64, "Questions are cut to this many tokens.")
flags.DEFINE_integer("max_answer_length", 30, "Most tokens in a predicted answer.")
flags.DEFINE_integer("n_best_size", 20, "Best starts and ends tried per window.")
torch_reference.define_fine_tuning_flags("Windows", "span layer")
FLAGS.set_default("epochs", 2)  # qa.py's defaults
FLAGS.set_default("learning_rate", 5e-4)


def read(path, articles, flag):
    try:
        articles = parse_article_range(articles, flag)
    except ValueError as e:  # a bad START:END: one line, as tfllm's errors
        raise ConfigError(str(e)) from None
    return read_squad(path, articles)


def window_loss(rows, logits):
    """Mean over windows of the start and end cross-entropies, softmax over each window's own tokens (as qa.py)."""
    def cross_entropy(x, target):
        return np.log(np.sum(np.exp(x - x.max()))) + x.max() - x[target]

    return float(np.mean([(cross_entropy(starts[: len(row[0])], row[2]) + cross_entropy(ends[: len(row[0])], row[3]))
                          / 2 for row, (starts, ends) in zip(rows, logits)]))


def main(_):
    train_examples = read(FLAGS.train_file, FLAGS.train_articles, "--train_articles")[: FLAGS.max_train_examples]
    eval_file = FLAGS.eval_file or FLAGS.train_file
    evaluate = FLAGS.eval_file or FLAGS.eval_articles
    eval_examples = read(eval_file, FLAGS.eval_articles, "--eval_articles") if evaluate else []
    import torch  # noqa: PLC0415  (test extra, not a tfllm dependency)
    import transformers  # noqa: PLC0415

    torch.set_num_threads(FLAGS.num_threads or os.cpu_count())
    torch.manual_seed(FLAGS.seed)
    transformers.logging.set_verbosity_error()  # not the new span layer's "MISSING" weights report
    tokenizer = transformers.AutoTokenizer.from_pretrained(FLAGS.init_checkpoint)
    model = transformers.BertForQuestionAnswering.from_pretrained(
        FLAGS.init_checkpoint, hidden_dropout_prob=FLAGS.dropout, attention_probs_dropout_prob=FLAGS.dropout)
    window = dict(max_length=FLAGS.max_seq_length, stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length)
    train, truncated = torch_reference.question_answering_windows(tokenizer, train_examples, **window)

    def batch(rows, indices, with_labels=True):  # padded to the batch's longest window
        ids, mask = torch_reference.padded([rows[i][0] for i in indices], tokenizer.pad_token_id)
        types, _ = torch_reference.padded([rows[i][1] for i in indices], 0)
        features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if not with_labels:
            return features
        return dict(features, start_positions=torch.tensor([rows[i][2] for i in indices]),
                    end_positions=torch.tensor([rows[i][3] for i in indices]))

    steps = int(FLAGS.epochs * max(len(train) // FLAGS.batch_size, 1))
    print(f"{len(train_examples)} training questions ({truncated} cut to {FLAGS.max_query_length} tokens) -> "
          f"{len(train)} windows, {steps} updates of {FLAGS.batch_size}", flush=True)
    train_seconds, _ = torch_reference.fine_tune(
        model, torch_reference.shuffled_batches(len(train), FLAGS.batch_size, lambda i: batch(train, i), FLAGS.seed),
        steps, FLAGS.learning_rate, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm, log_every=100)
    if not evaluate:
        print(f"training {train_seconds:.0f} s", flush=True)
        return

    rows, _ = torch_reference.question_answering_windows(tokenizer, eval_examples, **window)
    logits = [pair for starts, ends in torch_reference.predicted_logits(model, torch_reference.ordered_batches(
        len(rows), FLAGS.batch_size, lambda indices: batch(rows, indices, with_labels=False)),
        names=("start_logits", "end_logits")) for pair in zip(starts, ends)]
    scores = squad_scores({e.id: e.answers for e in eval_examples}, torch_reference.question_answering_answers(
        eval_examples, rows, logits, FLAGS.n_best_size, FLAGS.max_answer_length))
    print(f"eval: exact_match {scores['exact_match']:.2f}  f1 {scores['f1']:.2f}  "
          f"({scores['questions']} questions of {eval_file} --eval_articles={FLAGS.eval_articles or ':'}; "
          f"window loss {window_loss(rows, logits):.4f}); training {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    run(main)
