"""Hugging Face ELECTRA discriminators (`ElectraModel`, `ElectraForPreTraining`,
`ElectraForSequenceClassification`) -> tfllm `Bert`.

The discriminator is BERT's encoder whose embeddings may be narrower than
the hidden size (`embedding_size`, e.g. 128 in ELECTRA-small): a dense
`embeddings_project` maps them up, `Bert(embedding_dim=...)`. There is no
pooler. Tensors are renamed into BERT's layout (`hf_bert.py` maps them):

- `electra.*` -> the encoder (`electra.` stripped; `embeddings_project` kept);
- `discriminator_predictions.{dense, dense_prediction}` stay: the
  replaced-token-detection head of `ElectraDiscriminator`;
- `classifier.dense` -> `pooler.dense` and `classifier.out_proj` ->
  `classifier`: ELECTRA's classification head is dense + GELU on `[CLS]`,
  then the output layer (a pooler with `pooler_activation="gelu"`, dropout
  before it in training as RoBERTa's).

Generators (`ElectraForMaskedLM`) are not mapped: their head's unused weights are named.
"""

from tfllm.convert.config_fields import size
from tfllm.convert.errors import ConversionError
from tfllm.convert.hf_bert import encoder_fields
from tfllm.convert.hf_bert import normalize_names as bert_names

_RENAMES = (("classifier.dense.", "pooler.dense."), ("classifier.out_proj.", "classifier."))


def config_from_hf(config, source="config.json"):
    """tfllm `Bert` kwargs for a HF ELECTRA config dict; refuses (naming the field) what tfllm cannot represent."""
    if config.get("model_type") != "electra":
        raise ConversionError(f"{source}: model_type={config.get('model_type')!r} is not 'electra'")
    kwargs = encoder_fields(config, source)
    return dict(kwargs, embedding_dim=size(config, "embedding_size", source, kwargs["hidden_dim"]),
                pooler_activation="gelu")


def normalize_names(tensors):
    """ELECTRA tensor names -> the BERT names `hf_bert.py` maps."""
    return bert_names(tensors, prefix="electra.", renames=_RENAMES)
