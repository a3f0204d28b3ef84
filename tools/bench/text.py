"""The text the benchmarks feed their models, and the vocabulary built from it (one rule for all of them)."""

import os
import re

from tfllm.data.text_classification import read_table_column
from tfllm.tokenizers import RESERVED_TOKENS

FALLBACK_TEXTS = ["a gripping , beautifully acted film .", "dull and far too long .", "not bad at all .",
                  "the plot is thin but the performances carry it through to a satisfying end ."]


def read_texts(path):
    """The `sentence` column of an SST-2 style table, or a few built-in sentences when `path` is absent."""
    if not path or not os.path.exists(path):
        print(f"{path!r} not found: timing {len(FALLBACK_TEXTS)} built-in sentences")
        return FALLBACK_TEXTS
    return read_table_column(path, "sentence")


def word_vocabulary(texts):
    """BERT's special tokens, then every lower-cased word and punctuation mark of `texts`."""
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    return list(RESERVED_TOKENS) + words
