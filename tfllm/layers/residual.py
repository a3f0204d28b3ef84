"""The residual + LayerNorm wrapper shared by encoder and decoder blocks."""

import keras


def make_layer_norm(epsilon, dtype, name):
    return keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)


def residual(x, sublayer, norm, dropout, normalize_first, training):
    """Post-LN (BERT): norm(x + drop(f(x))). Pre-LN (GPT-2): x + drop(f(norm(x))).

    `sublayer` maps a tensor to a tensor; it may return (tensor, cache), in
    which case the cache is passed through as the second result.
    """
    out = sublayer(norm(x) if normalize_first else x)
    out, cache = out if isinstance(out, tuple) else (out, None)
    out = x + dropout(out, training=training)
    if not normalize_first:
        out = norm(out)
    return out, cache
