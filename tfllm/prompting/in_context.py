"""In-context classification with a causal LM: k demonstrations + the query, scored by label-word likelihood.

The prompt is the demonstrations, each the template filled with its sentence
and its label word, one per line, then the query's template up to the label
slot (Brown et al., 2020). Each class scores `log P(label word | prompt)`,
summed over the word's tokens, so label words may be several tokens long.
A prompt longer than the model's context loses its oldest tokens (counted and
logged), never the query.
"""

import numpy as np
from absl import logging
from keras import ops

from tfllm.errors import ConfigError
from tfllm.prompting.templates import PromptTemplate
from tfllm.tokenizers.strings import token_id_lists


def in_context_prefixes(template, verbalizer, demonstrations, sentences, separator="\n"):
    """Prompt texts up to the label slot: `demo_1 <sep> ... demo_k <sep> query`.

    `demonstrations` is a list of `(sentence, label)` pairs (may be empty:
    zero-shot).
    """
    template = template if isinstance(template, PromptTemplate) else PromptTemplate(template)
    context = "".join(template.fill(s, verbalizer.words[y]) + separator for s, y in demonstrations)
    return [context + template.prefix(s) for s in sentences]


def label_log_likelihoods(model, tokenizer, template, verbalizer, prefixes, batch_size=16):
    """`[N, C]` float64: log P(label word c | prefix n) under a `GptCausalLM`.

    Every (prefix, label word) pair is one sequence, right-padded in batches;
    the score sums the log-softmax of the word's tokens at their positions.
    """
    template = template if isinstance(template, PromptTemplate) else PromptTemplate(template)
    max_length = model.backbone.max_sequence_length
    label_ids = token_id_lists(tokenizer, [template.label_continuation(w) for w in verbalizer.words])
    longest_label = max(len(ids) for ids in label_ids)
    prefix_ids = token_id_lists(tokenizer, list(prefixes))
    cut = 0
    sequences = []
    for n, ids in enumerate(prefix_ids):
        if not ids:
            raise ConfigError(f"prompt {n} is empty: a causal LM needs at least one token before the label word")
        keep = max_length - longest_label
        cut += len(ids) > keep
        ids = ids[-keep:] if len(ids) > keep else ids
        sequences.extend((ids, label) for label in label_ids)
    if cut:
        logging.warning("%d of %d prompts lost their oldest tokens to fit the %d-token context", cut,
                        len(prefix_ids), max_length)
    scores = np.zeros(len(sequences))
    for start in range(0, len(sequences), batch_size):
        scores[start : start + batch_size] = _score_batch(model, sequences[start : start + batch_size])
    return scores.reshape(len(prefix_ids), len(label_ids))


def _score_batch(model, pairs):
    length = max(len(p) + len(w) for p, w in pairs)
    token_ids = np.zeros((len(pairs), length), "int32")
    padding_mask = np.zeros((len(pairs), length), bool)
    for i, (prefix, word) in enumerate(pairs):
        row = prefix + word
        token_ids[i, : len(row)] = row
        padding_mask[i, : len(row)] = True
    logits = model({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
    log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1)).astype(np.float64)
    scores = []
    for i, (prefix, word) in enumerate(pairs):
        # Token t of the word is predicted at the position before it.
        positions = np.arange(len(prefix) - 1, len(prefix) + len(word) - 1)
        scores.append(log_probs[i, positions, word].sum())
    return scores
