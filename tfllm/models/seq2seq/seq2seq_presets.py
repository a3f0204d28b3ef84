"""Encoder-decoder Transformer sizes: Vaswani et al. (2017) base, a small one for CPUs, a tiny one for tests."""

_VOCAB = 8000  # a shared SentencePiece vocabulary; recipes override with their own


def _transformer(layers, hidden, heads, vocab=_VOCAB, context=256, ratio=4):
    return dict(
        vocabulary_size=vocab, num_encoder_layers=layers, num_decoder_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=ratio * hidden, max_sequence_length=context,
    )


SEQ2SEQ_PRESETS = {
    "transformer_tiny": _transformer(1, 32, 2, vocab=100, context=64),  # for tests
    # Feed-forward 2x wide, as the common Multi30k setups: a quarter less
    # compute per token than 4x, for a CPU budget of minutes.
    "transformer_small": _transformer(3, 256, 4, ratio=2),
    "transformer_base": _transformer(6, 512, 8),
}
