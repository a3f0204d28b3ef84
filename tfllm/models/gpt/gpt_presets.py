"""GPT-2 sizes (Radford et al., 2019) plus a nano size for tests."""

_VOCAB = 50257  # GPT-2's byte-level BPE vocabulary


def _gpt(layers, hidden, heads, vocab=_VOCAB, context=1024):
    return dict(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=4 * hidden, max_sequence_length=context,
    )


GPT_PRESETS = {
    "gpt_nano": _gpt(2, 64, 2, vocab=1000, context=128),  # for tests
    "gpt2": _gpt(12, 768, 12),
    "gpt2_medium": _gpt(24, 1024, 16),
    "gpt2_large": _gpt(36, 1280, 20),
    "gpt2_xl": _gpt(48, 1600, 25),
}
