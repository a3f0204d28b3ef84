"""BERT sizes: the Turc et al. (2019) compact models plus the original base and large."""

_VOCAB = 30522  # the published uncased vocabulary; recipes override with their own


def _bert(layers, hidden, heads, vocab=_VOCAB):
    return dict(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=4 * hidden,
    )


BERT_PRESETS = {
    "bert_nano": dict(_bert(1, 32, 2, vocab=1000), max_sequence_length=128),  # for tests
    "bert_tiny": _bert(2, 128, 2),
    "bert_mini": _bert(4, 256, 4),
    "bert_small": _bert(4, 512, 8),
    "bert_medium": _bert(8, 512, 8),
    "bert_base": _bert(12, 768, 12),
    "bert_large": _bert(24, 1024, 16),
}
