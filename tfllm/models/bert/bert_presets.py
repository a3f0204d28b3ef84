"""BERT sizes (the Turc et al. (2019) compact models plus the original base and large), and RoBERTa,
DistilBERT and ELECTRA (discriminator) sizes of the same encoder."""

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

# The same encoder as other families publish it (see `Bert`'s family options);
# HF configs set these fields themselves when loading with `from_pretrained`.
_ROBERTA = dict(vocabulary_size=50265, max_sequence_length=514, position_offset=2, num_segments=1,
                layer_norm_epsilon=1e-5)
_DISTILBERT = dict(num_segments=0, pooler_activation="relu")
_ELECTRA = dict(pooler_activation="gelu")

BERT_PRESETS.update({
    "roberta_base": dict(_bert(12, 768, 12), **_ROBERTA),
    "roberta_large": dict(_bert(24, 1024, 16), **_ROBERTA),
    "distilbert_base": dict(_bert(6, 768, 12), **_DISTILBERT),
    "electra_small": dict(_bert(12, 256, 4), embedding_dim=128, **_ELECTRA),
    "electra_base": dict(_bert(12, 768, 12), **_ELECTRA),
    "electra_large": dict(_bert(24, 1024, 16), **_ELECTRA),
})
