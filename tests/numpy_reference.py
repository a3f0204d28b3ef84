"""Independent numpy implementations of the Transformer pieces, used as test references."""

import math

import numpy as np

_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logits, labels):
    """Softmax cross-entropy of integer `labels` [...] under `logits` [..., C], in float64: shape [...]."""
    logits = np.asarray(logits, np.float64)
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, np.asarray(labels)[..., None], -1)[..., 0]


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def attention(q, k, v, mask=None):
    """q [B,T,N,H], k/v [B,S,N,H], mask bool broadcastable to [B,N,T,S]."""
    logits = np.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask, logits, -1e30)
    return np.einsum("bnts,bsnh->btnh", softmax(logits), v)


def multi_head_attention(weights, query, value, mask=None):
    """weights: dict with q/k/v/o kernels ([D,N,H] / [N,H,D]) and biases."""
    q = np.einsum("btd,dnh->btnh", query, weights["wq"]) + weights["bq"]
    k = np.einsum("btd,dnh->btnh", value, weights["wk"]) + weights["bk"]
    v = np.einsum("btd,dnh->btnh", value, weights["wv"]) + weights["bv"]
    out = attention(q, k, v, mask)
    return np.einsum("btnh,nhd->btd", out, weights["wo"]) + weights["bo"]


def feed_forward(weights, x, activation):
    h = activation(x @ weights["w1"] + weights["b1"])
    return h @ weights["w2"] + weights["b2"]


def encoder_block(w, x, mask, eps, normalize_first=False, activation=gelu):
    """BERT (post-LN) or GPT-2 (pre-LN) encoder layer without dropout."""
    if normalize_first:
        x = x + multi_head_attention(w["attn"], *(2 * [layer_norm(x, *w["ln1"], eps)]), mask)
        return x + feed_forward(w["ffn"], layer_norm(x, *w["ln2"], eps), activation)
    x = layer_norm(x + multi_head_attention(w["attn"], x, x, mask), *w["ln1"], eps)
    return layer_norm(x + feed_forward(w["ffn"], x, activation), *w["ln2"], eps)
