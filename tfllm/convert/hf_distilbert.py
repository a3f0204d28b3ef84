"""Hugging Face DistilBERT (`DistilBertModel`, `DistilBertForSequenceClassification`) -> tfllm `Bert`.

DistilBERT is BERT's post-LN encoder without segment embeddings and without
a pooler, under its own config fields (`dim`, `n_layers`, `hidden_dim` for
the feed-forward width, ...) and tensor names, renamed here into BERT's
(`hf_bert.py` maps them):

| DistilBERT | BERT |
| --- | --- |
| `distilbert.embeddings.*` | `embeddings.*` |
| `transformer.layer.N.attention.{q,k,v}_lin` | `encoder.layer.N.attention.self.{query,key,value}` |
| `transformer.layer.N.attention.out_lin` | `encoder.layer.N.attention.output.dense` |
| `transformer.layer.N.sa_layer_norm` | `encoder.layer.N.attention.output.LayerNorm` |
| `transformer.layer.N.ffn.lin1` / `lin2` | `encoder.layer.N.intermediate.dense` / `output.dense` |
| `transformer.layer.N.output_layer_norm` | `encoder.layer.N.output.LayerNorm` |
| `pre_classifier` | `pooler.dense` (dense + ReLU on `[CLS]`: `pooler_activation="relu"`) |
| `classifier` | `classifier` |

`sinusoidal_pos_embds=True` checkpoints store their (fixed) sinusoidal table
as `position_embeddings.weight`, which loads as it is: the lookup is the same.
"""

import re

from tfllm.convert import config_fields as fields
from tfllm.convert.errors import ConversionError
from tfllm.convert.hf_bert import ACTIVATIONS

_LAYER = {
    "attention.q_lin": "attention.self.query",
    "attention.k_lin": "attention.self.key",
    "attention.v_lin": "attention.self.value",
    "attention.out_lin": "attention.output.dense",
    "sa_layer_norm": "attention.output.LayerNorm",
    "ffn.lin1": "intermediate.dense",
    "ffn.lin2": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}


def config_from_hf(config, source="config.json"):
    """tfllm `Bert` kwargs for a HF DistilBERT config dict; refuses (naming the field) what tfllm cannot represent."""
    if config.get("model_type") != "distilbert":
        raise ConversionError(f"{source}: model_type={config.get('model_type')!r} is not 'distilbert'")
    if config.get("activation", "gelu") not in ACTIVATIONS:
        raise ConversionError(f"{source}: activation={config.get('activation')!r} is not supported by tfllm "
                              f"(supported: {', '.join(ACTIVATIONS)})")
    hidden = fields.size(config, "dim", source)
    heads = fields.size(config, "n_heads", source)
    fields.heads_divide(hidden, heads, "dim", "n_heads", source)
    return dict(
        vocabulary_size=fields.size(config, "vocab_size", source),
        num_layers=fields.size(config, "n_layers", source),
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=fields.size(config, "hidden_dim", source),
        dropout=fields.probability(config, "dropout", source, 0.1),
        attention_dropout=fields.probability(config, "attention_dropout", source, 0.1),
        max_sequence_length=fields.size(config, "max_position_embeddings", source, 512),
        num_segments=0,
        activation=ACTIVATIONS[config.get("activation", "gelu")],
        layer_norm_epsilon=1e-12,  # fixed in transformers' DistilBERT
        initializer_range=fields.positive(config, "initializer_range", source, 0.02),
        pooler_activation="relu",
    )


def normalize_names(tensors):
    """DistilBERT tensor names -> the BERT names `hf_bert.py` maps."""
    out = {}
    for name, value in tensors.items():
        name = name[len("distilbert."):] if name.startswith("distilbert.") else name
        match = re.fullmatch(r"transformer\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
        if match and match.group(2) in _LAYER:
            name = f"encoder.layer.{match.group(1)}.{_LAYER[match.group(2)]}.{match.group(3)}"
        elif name.startswith("pre_classifier."):
            name = "pooler.dense." + name[len("pre_classifier."):]
        out[name] = value
    return out
