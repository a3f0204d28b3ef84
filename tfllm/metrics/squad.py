"""The official SQuAD v1.1 evaluation: exact match and F1 over normalized answer words.

Same definitions as the official `evaluate-v1.1.py` (Rajpurkar et al., 2016),
so scores are comparable with published ones: lower-case, remove ASCII
punctuation, remove the articles a/an/the, collapse whitespace; F1 over the
bag of remaining words; each question scores its best gold answer; scores
are percentages over all questions (an unanswered question scores 0).
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text):
    """Lower-case, drop punctuation, drop articles, collapse whitespace (in the official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction, ground_truth):
    """1.0 if the normalized strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1(prediction, ground_truth):
    """Harmonic mean of word precision and recall after normalization (0 if nothing in common)."""
    prediction_words = normalize_answer(prediction).split()
    truth_words = normalize_answer(ground_truth).split()
    common = sum((collections.Counter(prediction_words) & collections.Counter(truth_words)).values())
    if common == 0:
        return 0.0
    precision = common / len(prediction_words)
    recall = common / len(truth_words)
    return 2 * precision * recall / (precision + recall)


def squad_scores(gold_answers, predictions):
    """Official SQuAD v1.1 scores.

    Args:
        gold_answers: `{question_id: [answer text, ...]}` for every question.
        predictions: `{question_id: predicted text}`; missing ids score 0.

    Returns `{"exact_match": %, "f1": %, "questions": n, "unanswered": k}`.
    """
    if not gold_answers:
        raise ValueError("squad_scores: no questions to score")
    total_em = total_f1 = 0.0
    unanswered = 0
    for question_id, truths in gold_answers.items():
        if not truths:
            raise ValueError(f"squad_scores: question {question_id} has no gold answer")
        if question_id not in predictions:
            unanswered += 1
            continue
        prediction = predictions[question_id]
        total_em += max(exact_match(prediction, truth) for truth in truths)
        total_f1 += max(f1(prediction, truth) for truth in truths)
    n = len(gold_answers)
    return {"exact_match": 100.0 * total_em / n, "f1": 100.0 * total_f1 / n,
            "questions": n, "unanswered": unanswered}
