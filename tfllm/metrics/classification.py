"""Sentence-level metrics of the GLUE tasks, on whole evaluation sets (numpy).

Accuracy, F1 of the positive class (MRPC), Matthews correlation (CoLA), and
Pearson / Spearman correlation (STS-B), with the definitions of
scikit-learn and scipy (which the tests compare against). Scores are
fractions (0.837, not 83.7). Where a score is undefined (a constant input
to a correlation, no positive label nor prediction for F1) it is 0.0, as
scikit-learn does for F1 and Matthews correlation, never NaN.
"""

import numpy as np


def accuracy(labels, predictions):
    """Fraction of predictions equal to the label."""
    labels, predictions = _pair(labels, predictions)
    return float(np.mean(labels == predictions))


def f1_score(labels, predictions, positive=1):
    """F1 of the `positive` class: 2 TP / (2 TP + FP + FN)."""
    labels, predictions = _pair(labels, predictions)
    tp = np.sum((predictions == positive) & (labels == positive))
    wrong = np.sum((predictions == positive) != (labels == positive))
    return float(2 * tp / (2 * tp + wrong)) if tp + wrong else 0.0


def matthews_correlation(labels, predictions):
    """Matthews correlation coefficient, multi-class (Gorodkin's R_K; the binary phi coefficient for 2 classes)."""
    labels, predictions = _pair(labels, predictions)
    classes = np.union1d(labels, predictions)
    true_counts = np.array([np.sum(labels == c) for c in classes], dtype=np.float64)
    predicted_counts = np.array([np.sum(predictions == c) for c in classes], dtype=np.float64)
    n, correct = float(len(labels)), float(np.sum(labels == predictions))
    numerator = correct * n - true_counts @ predicted_counts
    denominator = np.sqrt((n * n - predicted_counts @ predicted_counts) * (n * n - true_counts @ true_counts))
    return float(numerator / denominator) if denominator else 0.0


def pearson_correlation(x, y):
    """Pearson's linear correlation of two score arrays."""
    x, y = _pair(x, y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(np.clip((x @ y) / denominator, -1.0, 1.0)) if denominator else 0.0


def spearman_correlation(x, y):
    """Spearman's rank correlation: Pearson's of the ranks, tied values sharing their mean rank."""
    x, y = _pair(x, y, dtype=np.float64)
    return pearson_correlation(_ranks(x), _ranks(y))


def classification_scores(labels, predictions, num_classes=2):
    """`accuracy` and `matthews_correlation`, and `f1` (of class 1) for two classes."""
    scores = {"accuracy": accuracy(labels, predictions)}
    if num_classes == 2:
        scores["f1"] = f1_score(labels, predictions)
    scores["matthews_correlation"] = matthews_correlation(labels, predictions)
    return scores


def regression_scores(labels, predictions):
    """`pearson` and `spearman` correlation of predicted scores with the labels."""
    return {"pearson": pearson_correlation(labels, predictions), "spearman": spearman_correlation(labels, predictions)}


def _pair(a, b, dtype=None):
    a, b = np.asarray(a, dtype=dtype).reshape(-1), np.asarray(b, dtype=dtype).reshape(-1)
    if len(a) != len(b) or not len(a):
        raise ValueError(f"expected two non-empty arrays of the same length, got {len(a)} and {len(b)}")
    return a, b


def _ranks(x):
    """1-based ranks of `x`; ties get the mean of the ranks they span (scipy's rankdata 'average')."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks
