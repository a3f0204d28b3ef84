"""The PyTorch/`transformers` reference for a GLUE run of recipes/classify.py: same data, checkpoint and settings.

    python tools/glue_transformers.py --train_file=../shared/data/glue/MRPC/train.tsv \
        --eval_file=../shared/data/glue/MRPC/dev.tsv --text_column="#1 String" --text_b_column="#2 String" \
        --label_column=Quality --init_checkpoint=<Hugging Face BERT folder> --learning_rate=1e-4 --epochs=3

takes the data flags of recipes/classify.py (the same reader reads the same
rows) and fine-tunes `transformers.BertForSequenceClassification` ([CLS]
pooler, dropout 0.1; one output and mean squared error for
`--task=regression`) as people run it: eager PyTorch on every core, batches
shuffled each epoch and padded to their longest pair (dynamic padding),
Hugging Face's tokenizer with longest-first truncation, AdamW with weight
decay off for biases and LayerNorm, linear warmup then linear decay to 0,
global gradient-norm clipping. Prints the same `eval:` line (same metrics,
`tfllm.metrics`) and the wall time of training. `--num_threads=1` for a
machine shared with other jobs (see the flag's help).
"""

import os
import sys

import numpy as np
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools.bench, run as a script

from tfllm.cli import run  # noqa: E402
from tfllm.data import read_text_examples  # noqa: E402
from tfllm.metrics import classification_scores  # noqa: E402
from tfllm.metrics import regression_scores  # noqa: E402
from tools.bench import torch_reference  # noqa: E402  (the shared PyTorch fine-tuning loop)

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training TSV/CSV (as recipes/classify.py).", required=True)
flags.DEFINE_string("eval_file", None, "Evaluation TSV/CSV.", required=True)
flags.DEFINE_list("columns", None, "Column names of files without a header.")
flags.DEFINE_string("text_column", "sentence", "Column of the (first) text.")
flags.DEFINE_string("text_b_column", None, "Column of the second text of a pair.")
flags.DEFINE_string("label_column", "label", "Column of the label.")
flags.DEFINE_enum("task", "classification", ["classification", "regression"], "As recipes/classify.py.")
flags.DEFINE_list("label_names", None, "Class names in id order.")
flags.DEFINE_integer("num_classes", 2, "Classes when no --label_names.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per pair (longest-first truncation).")
torch_reference.define_fine_tuning_flags("Examples", "classifier")


def read(path):
    num_classes = len(FLAGS.label_names) if FLAGS.label_names else FLAGS.num_classes
    texts, labels = read_text_examples(path, FLAGS.text_column, FLAGS.text_b_column, FLAGS.label_column,
                                       task=FLAGS.task, label_names=FLAGS.label_names, num_classes=num_classes,
                                       columns=FLAGS.columns)
    return (texts if isinstance(texts, tuple) else (texts,)), labels


def main(_):
    train_texts, train_labels = read(FLAGS.train_file)  # bad data fails before the slow imports
    eval_texts, eval_labels = read(FLAGS.eval_file)
    import torch  # noqa: PLC0415  (test extra, not a tfllm dependency)
    import transformers  # noqa: PLC0415

    torch.set_num_threads(FLAGS.num_threads or os.cpu_count())
    torch.manual_seed(FLAGS.seed)
    regression = FLAGS.task == "regression"
    tokenizer = transformers.AutoTokenizer.from_pretrained(FLAGS.init_checkpoint)
    num_labels = 1 if regression else (len(FLAGS.label_names) if FLAGS.label_names else FLAGS.num_classes)
    model = transformers.BertForSequenceClassification.from_pretrained(
        FLAGS.init_checkpoint, num_labels=num_labels, problem_type="regression" if regression else None,
        hidden_dropout_prob=FLAGS.dropout, attention_probs_dropout_prob=FLAGS.dropout)

    def batch(texts, indices):  # padded to the batch's longest pair
        return tokenizer(*([t[i] for i in indices] for t in texts), truncation=True,
                         max_length=FLAGS.max_seq_length, padding="longest", return_tensors="pt")

    steps = int(FLAGS.epochs * max(len(train_labels) // FLAGS.batch_size, 1))
    label_dtype = torch.float32 if regression else torch.long

    def train_batch(indices):
        return dict(batch(train_texts, indices), labels=torch.tensor(train_labels[indices], dtype=label_dtype))

    train_seconds, _ = torch_reference.fine_tune(
        model, torch_reference.shuffled_batches(len(train_labels), FLAGS.batch_size, train_batch, FLAGS.seed),
        steps, FLAGS.learning_rate, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm, log_every=50)

    outputs = np.concatenate(torch_reference.predicted_logits(model, torch_reference.ordered_batches(
        len(eval_labels), FLAGS.batch_size, lambda indices: batch(eval_texts, indices))))
    if regression:
        mse = float(np.mean((outputs[:, 0] - eval_labels) ** 2))
        results = dict(regression_scores(eval_labels, outputs[:, 0]), loss=mse)
    else:
        results = classification_scores(eval_labels, outputs.argmax(-1), num_labels)
    print("eval: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items()) +
          f"  ({len(eval_labels)} examples of {FLAGS.eval_file}); training {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    run(main)
