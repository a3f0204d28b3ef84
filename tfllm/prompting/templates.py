"""Prompt templates and verbalizers: how a classification example becomes a cloze question.

A template is text with one `{sentence}` (the example) and one `[MASK]` (the
label slot), e.g. `"{sentence} It was [MASK]."`. A verbalizer maps each class
id to a label word, e.g. `terrible,great` (class 0 -> "terrible"). A
masked LM fills the slot; a causal LM reads the text before the slot and is
scored on each label word (see `cloze.py` and `in_context.py`).
"""

import numpy as np

from tfllm.errors import ConfigError
from tfllm.tokenizers.strings import token_id_lists

SENTENCE = "{sentence}"
MASK = "[MASK]"


class PromptTemplate:
    """A pattern with exactly one `{sentence}` and one `[MASK]`, the sentence first."""

    def __init__(self, template):
        if template.count(SENTENCE) != 1 or template.count(MASK) != 1:
            raise ConfigError(f"template {template!r}: expected exactly one {SENTENCE} and one {MASK}, "
                             f"e.g. '{SENTENCE} It was {MASK}.'")
        if template.index(SENTENCE) > template.index(MASK):
            raise ConfigError(f"template {template!r}: {SENTENCE} must come before {MASK} (a causal LM reads "
                             "the sentence before it predicts the label word)")
        self.template = template
        head, rest = template.split(SENTENCE)
        middle, tail = rest.split(MASK)
        self.before_sentence, self.before_mask, self.after_mask = head, middle, tail

    def __repr__(self):
        return f"PromptTemplate({self.template!r})"

    def fill(self, sentence, label_word=MASK):
        """The template with the sentence in, and the label slot holding `label_word`."""
        return self.before_sentence + sentence + self.before_mask + label_word + self.after_mask

    def prefix(self, sentence):
        """Text up to the label slot, without trailing spaces (they belong to the label word for BPE)."""
        return (self.before_sentence + sentence + self.before_mask).rstrip(" ")

    def label_continuation(self, word):
        """What follows `prefix()` when the slot holds `word`: the spaces before the slot, then the word."""
        spaces = len(self.before_mask) - len(self.before_mask.rstrip(" "))
        return " " * spaces + word


class Verbalizer:
    """Class id -> label word, from `"terrible,great"` (ids in order) or `"0:terrible,1:great"`."""

    def __init__(self, spec):
        words = [w.strip() for w in spec.split(",")] if isinstance(spec, str) else list(spec)
        if any(":" in w for w in words):
            pairs = [w.split(":", 1) for w in words]
            try:
                mapping = {int(k): v.strip() for k, v in pairs}
            except ValueError:
                raise ConfigError(f"verbalizer {spec!r}: expected 'word,word' or 'id:word,id:word'") from None
            if sorted(mapping) != list(range(len(mapping))):
                raise ConfigError(f"verbalizer {spec!r}: class ids must be 0..{len(mapping) - 1}, "
                                 f"got {sorted(mapping)}")
            words = [mapping[i] for i in range(len(mapping))]
        if len(words) < 2 or not all(words):
            raise ConfigError(f"verbalizer {spec!r}: expected at least two non-empty label words")
        if len(set(words)) != len(words):
            raise ConfigError(f"verbalizer {spec!r}: label words must differ")
        self.words = words

    def __len__(self):
        return len(self.words)

    def __repr__(self):
        return f"Verbalizer({','.join(self.words)!r})"

    def single_token_ids(self, tokenizer):
        """One vocabulary id per label word; a masked LM fills one slot, so each word must be one token."""
        ids = []
        for i, word in enumerate(self.words):
            pieces = token_id_lists(tokenizer, [word])[0]
            if len(pieces) != 1 or pieces[0] == tokenizer.token_to_id(tokenizer.oov_token):
                tokens = [tokenizer.id_to_token(p) for p in pieces]
                raise ConfigError(f"verbalizer word {word!r} (class {i}) is {tokens} in this vocabulary; a cloze "
                                 "label word must be a single known token: choose another word")
            ids.append(pieces[0])
        return ids


def sample_per_class(labels, shots, num_classes, seed):
    """Indices of `shots` examples of every class, drawn without replacement with `seed` (sorted by class)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picked = []
    for c in range(num_classes):
        candidates = np.flatnonzero(labels == c)
        if len(candidates) < shots:
            raise ConfigError(f"--shots={shots}: class {c} has only {len(candidates)} training examples")
        picked.append(rng.choice(candidates, size=shots, replace=False))
    return np.concatenate(picked) if picked else np.zeros(0, int)

