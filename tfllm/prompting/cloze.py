"""Cloze classification with a masked LM: zero-shot, and PET-style few-shot prompt fine-tuning.

The sentence is wrapped in a template with one `[MASK]` (e.g. "{sentence} It
was [MASK]."), and the class scores are the masked LM's logits at that
position for each class's label word (Schick & Schuetze, 2021, "Exploiting
Cloze Questions for Few Shot Text Classification", PET). Zero-shot uses the
pretrained MLM as is; few-shot trains the whole model with cross-entropy over
those label-word logits, so the head it starts from is the pretrained MLM
head rather than a new random classifier. (PET's auxiliary MLM loss on
unlabelled text and its distillation stage are not included.)

keras-hub has no prompt-based classifier, so this is a thin model around
`BertPretrainer`.
"""

import keras
import numpy as np
from absl import logging
from keras import ops

from tfllm.errors import ConfigError
from tfllm.prompting.templates import PromptTemplate
from tfllm.tokenizers.strings import token_id_lists
from tfllm.tokenizers.word_piece import CLS
from tfllm.tokenizers.word_piece import MASK
from tfllm.tokenizers.word_piece import PAD
from tfllm.tokenizers.word_piece import SEP


@keras.saving.register_keras_serializable(package="tfllm")
class LabelWordLogits(keras.layers.Layer):
    """MLM logits [B, 1, V] at the mask -> class logits [B, C]: the columns of the label words."""

    def __init__(self, label_token_ids, **kwargs):
        super().__init__(**kwargs)
        self.label_token_ids = [int(i) for i in label_token_ids]

    def call(self, mlm_logits):
        return ops.take(mlm_logits[:, 0, :], np.array(self.label_token_ids, "int32"), axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_token_ids": self.label_token_ids}


def cloze_classifier(pretrainer, label_token_ids):
    """A `keras.Model` from the pretrainer's inputs (incl. `masked_lm_positions` [B, 1]) to float32 class logits."""
    inputs = dict(pretrainer.input)
    logits = LabelWordLogits(label_token_ids, name="label_word_logits")(pretrainer(inputs)["mlm_logits"])
    return keras.Model(inputs, logits, name="cloze_classifier")


def encode_cloze(tokenizer, template, sentences, sequence_length):
    """Token ids of `[CLS] template-with-sentence [SEP]` with `[MASK]` in the label slot.

    Each piece of the template (text before the sentence, the sentence, text
    between sentence and slot, text after) is tokenized on its own, so the
    slot is exactly one `[MASK]` token whatever the tokenizer does to the
    string "[MASK]". Over-long sentences are cut (the template never is).

    Returns `(features, num_truncated)`: `features` holds `token_ids`,
    `segment_ids`, `padding_mask` ([N, L], L the longest row) and
    `masked_lm_positions` ([N, 1]).
    """
    template = template if isinstance(template, PromptTemplate) else PromptTemplate(template)
    ids = {t: tokenizer.token_to_id(t) for t in (CLS, SEP, MASK, PAD)}
    head, middle, tail = (token_id_lists(tokenizer, [text])[0] if text.strip() else []
                          for text in (template.before_sentence, template.before_mask, template.after_mask))
    budget = sequence_length - (3 + len(head) + len(middle) + len(tail))  # [CLS], [MASK], [SEP]
    if budget < 1:
        raise ConfigError(f"{template!r} needs {sequence_length - budget + 1} tokens with a one-token sentence; "
                         f"sequence_length is {sequence_length}")
    rows, positions, num_truncated = [], [], 0
    for sentence in token_id_lists(tokenizer, list(sentences)):
        num_truncated += len(sentence) > budget
        before = [ids[CLS], *head, *sentence[:budget], *middle]
        positions.append(len(before))
        rows.append(before + [ids[MASK], *tail, ids[SEP]])
    length = max((len(r) for r in rows), default=1)
    token_ids = np.full((len(rows), length), ids[PAD], "int32")
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
    features = {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": token_ids != ids[PAD],
        "masked_lm_positions": np.array(positions, "int32")[:, None],
    }
    if num_truncated:
        logging.warning("%d of %d sentences cut to %d tokens to fit the template in %d", num_truncated, len(rows),
                        budget, sequence_length)
    return features, num_truncated
