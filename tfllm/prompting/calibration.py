"""Contextual calibration (Zhao et al., 2021, "Calibrate Before Use"): remove a prompt's bias toward some label words.

A language model may prefer one label word whatever the input (it is more
frequent, or the demonstrations end with it). Scoring content-free inputs
("N/A", "", "[MASK]") in the same template measures that prior; dividing each
class probability by it (W = diag(p_cf)^-1, b = 0) makes a content-free input
score every class equally.
"""

import numpy as np

CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def log_softmax(scores):
    scores = np.asarray(scores, np.float64)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def content_free_log_prior(content_free_scores):
    """Mean class probabilities over the content-free inputs' scores `[M, C]`, as log-probabilities `[C]`."""
    return np.log(np.exp(log_softmax(content_free_scores)).mean(axis=0))


def calibrate(scores, content_free_scores):
    """Calibrated class log-probabilities `[N, C]` from raw class scores `[N, C]` (logits or log-likelihoods)."""
    return log_softmax(log_softmax(scores) - content_free_log_prior(content_free_scores))
