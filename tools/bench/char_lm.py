"""`benchmark.py char-lm`: nanoGPT's CPU Tiny Shakespeare setting, wall time to the end of training.

nanoGPT's README runs its char model on a CPU with 4 layers, 4 heads, 128
wide, block 64, batch 12, dropout 0, AdamW lr 1e-3 (beta_2 0.99, weight decay
0.1 on matrices), 100 warmup steps, cosine to 1e-4 over 2,000 steps, the
first 90% of the text for training, and reaches a validation loss of ~1.88
nats/char. Both sides run that setting here (`--char_steps` shortens it), one
after the other:
- tfllm: `recipes/train_gpt.py --jit_compile` as a user runs it (a new
  process, so the wall time includes TensorFlow's start-up and the first
  trace; `--char_without_xla` adds the run without XLA, ~4 more minutes;
  `--noxla` runs only that one);
- PyTorch (`--torch`): a nanoGPT-style loop around `transformers`'
  `GPT2LMHeadModel` in this process (random blocks per step, eager, no
  `torch.compile`), timed from building the model.
Each reports the wall time and the mean loss over every validation character.
"""

import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from tools.bench import torch_reference
from tools.bench.timing import print_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTING = dict(num_layers=4, num_heads=4, hidden_dim=128, block_size=64, batch_size=12, max_steps=2000,
               learning_rate=1e-3, min_learning_rate=1e-4, warmup_steps=100, beta_2=0.99, weight_decay=0.1)


def setting_for(steps):
    """nanoGPT's setting with `steps` updates instead of 2,000 (a short run for a smoke test); warmup scales along."""
    return dict(SETTING, max_steps=steps, warmup_steps=SETTING["warmup_steps"] * steps // SETTING["max_steps"])


def run_tfllm(text_file, jit_compile, seed, setting=SETTING):
    """Wall seconds of `recipes/train_gpt.py` in the nanoGPT setting, the seconds it reports for training
    (+ validation), and its validation loss."""
    flags = [f"--{k}={v}" for k, v in setting.items()]
    model_dir = tempfile.mkdtemp(prefix="bench-char-")
    command = [sys.executable, os.path.join(ROOT, "recipes", "train_gpt.py"), f"--text_file={text_file}",
               f"--model_dir={model_dir}", "--tokenizer=char", "--dropout=0", "--strategy=cpu",
               f"--jit_compile={str(jit_compile).lower()}", f"--seed={seed}",
               f"--eval_every={setting['max_steps']}", *flags]  # one validation, at the end
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    found = re.search(r"validation: loss ([0-9.]+).* trained for ([0-9]+) s", proc.stdout)
    return seconds, float(found.group(2)), float(found.group(1))


def _learning_rate(step, setting=SETTING):
    """nanoGPT's `get_lr`: linear warmup, then cosine from the peak to the minimum."""
    peak, low, warmup, total = (setting[k] for k in ("learning_rate", "min_learning_rate", "warmup_steps",
                                                     "max_steps"))
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    ratio = (step - warmup) / (total - warmup)
    return low + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (peak - low)


def run_torch(text, seed, setting=SETTING):
    """Wall seconds of the nanoGPT-style PyTorch loop, and its validation loss."""
    import torch  # noqa: PLC0415  (optional: the PyTorch side, --torch only)
    import torch.nn.functional as F  # noqa: PLC0415  (optional: the PyTorch side, --torch only)

    start = time.perf_counter()
    lookup = {c: i for i, c in enumerate(sorted(set(text)))}
    data = np.fromiter((lookup[c] for c in text), np.int64, len(text))
    split = int(0.9 * len(data))
    train, val = torch.from_numpy(data[:split]), torch.from_numpy(data[split:])
    block, batch = setting["block_size"], setting["batch_size"]
    config = dict(vocabulary_size=len(lookup), max_sequence_length=block, hidden_dim=setting["hidden_dim"],
                  num_layers=setting["num_layers"], num_heads=setting["num_heads"],
                  intermediate_dim=4 * setting["hidden_dim"], dropout=0.0)
    model = torch_reference.gpt2(config)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": setting["weight_decay"]},
                                   {"params": others, "weight_decay": 0.0}],
                                  lr=setting["learning_rate"], betas=(0.9, setting["beta_2"]))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(setting["max_steps"]):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, setting)
        starts = torch.randint(len(train) - block - 1, (batch,), generator=generator)
        x = torch.stack([train[i:i + block] for i in starts])
        y = torch.stack([train[i + 1:i + 1 + block] for i in starts])
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        blocks = (len(val) - 1) // block
        for first in range(0, blocks, 64):
            rows = range(first, min(first + 64, blocks))
            x = torch.stack([val[r * block:(r + 1) * block] for r in rows])
            y = torch.stack([val[r * block + 1:(r + 1) * block + 1] for r in rows])
            logits = model(input_ids=x).logits
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
            count += y.numel()
    return time.perf_counter() - start, total / count


def run(flags):
    text_file = flags.char_text_file
    if not os.path.exists(text_file):
        raise FileNotFoundError(f"--char_text_file: {text_file} not found (Tiny Shakespeare input.txt)")
    setting = setting_for(flags.char_steps)
    print("nanoGPT CPU setting: " + ", ".join(f"{k} {v}" for k, v in setting.items()) + "; dropout 0")
    rows = []
    jit_runs = (False,) if not flags.xla else (False, True) if flags.char_without_xla else (True,)
    for jit in jit_runs:
        seconds, training, loss = run_tfllm(text_file, jit, flags.seed, setting)
        rows.append([f"tfllm train_gpt.py{' --jit_compile' if jit else ''}", f"{seconds:.1f}", f"{training:.0f}",
                     f"{loss:.3f}"])
        print(rows[-1], flush=True)
    if flags.torch and torch_reference.available():
        with open(text_file, encoding="utf-8") as f:
            seconds, loss = run_torch(f.read(), flags.seed, setting)
        rows.append(["PyTorch transformers GPT-2, nanoGPT loop", f"{seconds:.1f}", f"{seconds:.1f}", f"{loss:.3f}"])
    print()
    print_table(["run", "wall s (process)", "training + validation s", "validation loss (nats/char)"], rows)
