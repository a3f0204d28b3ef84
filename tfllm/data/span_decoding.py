"""From start/end logits of each window to answer text: the n best context spans of a question over all its windows.

A span `(s, e)` of a window is a candidate when both ends are context tokens
(not `[CLS]`, the question, `[SEP]` or padding), `s <= e < s +
max_answer_length`, and `s` is a token this window gives its most context
(`SquadFeatures.max_context`, as BERT's `run_squad.py`). Its score is
`start_logits[s] + end_logits[e]`. Unlike BERT's shortcut (pairs of the 20
best starts and ends only), every candidate is scored, so the best span is
exact; it costs `[T, max_answer_length]` additions per window.
"""

import numpy as np

from tfllm.errors import ConfigError


def window_spans(start_logits, end_logits, start_ok, end_ok, max_answer_length, n_best_size):
    """The `n_best_size` best spans of one window, best first.

    Args:
        start_logits, end_logits: float `[T]`.
        start_ok, end_ok: bool `[T]`, where a span may start / end.
        max_answer_length: most tokens in a span.
        n_best_size: how many spans to return.

    Returns a list of `(score, start, end)`.
    """
    if max_answer_length < 1:
        raise ConfigError(f"max_answer_length={max_answer_length} must be at least 1")
    length = len(start_logits)
    # scores[s, k] = start[s] + end[s + k]: the span from s of k + 1 tokens.
    end_padded = np.concatenate([np.where(end_ok, end_logits, -np.inf), np.full(max_answer_length - 1, -np.inf)])
    ends = np.lib.stride_tricks.sliding_window_view(end_padded, max_answer_length)[:length]
    scores = np.where(start_ok, start_logits, -np.inf)[:, None] + ends
    flat = scores.ravel()
    count = min(n_best_size, int(np.sum(np.isfinite(flat))))
    if count == 0:
        return []
    best = np.argpartition(-flat, count - 1)[:count]
    # Best first; ties go to the earlier (start, end), so results are deterministic.
    best = best[np.lexsort((best, -flat[best]))]
    starts, offsets = np.divmod(best, max_answer_length)
    return [(float(flat[i]), int(s), int(s + k)) for i, s, k in zip(best, starts, offsets)]


def decode_answers(examples, features, start_logits, end_logits, max_answer_length=30, n_best_size=20):
    """Best answer text per question, and its n-best list.

    Args:
        examples: the `SquadExample`s the `features` were made from.
        features: `SquadFeatures`.
        start_logits, end_logits: one float array per window (at least as
            long as the window; padding beyond it is ignored).
        max_answer_length: most tokens in an answer.
        n_best_size: candidates kept per question (distinct texts).

    Returns `(predictions, n_best)`: `{question id: text}` (empty text when
    no window has a context token) and `{question id: [{"text", "score",
    "char_start", "char_end"}, ...]}`, best first.
    """
    if not (len(features) == len(start_logits) == len(end_logits)):
        raise ValueError(f"{len(features)} windows but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    candidates = [[] for _ in examples]
    for w in range(len(features)):
        n = len(features.token_ids[w])
        char_starts, char_ends = features.char_starts[w], features.char_ends[w]
        context = char_starts >= 0
        spans = window_spans(np.asarray(start_logits[w][:n], np.float64), np.asarray(end_logits[w][:n], np.float64),
                             context & features.max_context[w], context, max_answer_length, n_best_size)
        candidates[features.example_index[w]].extend(
            (score, int(char_starts[s]), int(char_ends[e])) for score, s, e in spans)

    predictions, n_best = {}, {}
    for example, found in zip(examples, candidates):
        found.sort(key=lambda c: -c[0])
        best, texts = [], set()
        for score, char_start, char_end in found:
            text = example.context[char_start:char_end]
            if text in texts:
                continue
            texts.add(text)
            best.append({"text": text, "score": score, "char_start": char_start, "char_end": char_end})
            if len(best) == n_best_size:
                break
        predictions[example.id] = best[0]["text"] if best else ""
        n_best[example.id] = best
    return predictions, n_best
