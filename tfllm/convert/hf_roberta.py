"""Hugging Face RoBERTa (`RobertaModel`, `RobertaForMaskedLM`, `RobertaForSequenceClassification`) -> tfllm `Bert`.

RoBERTa is BERT's encoder with three differences, all config values of `Bert`:
positions start past the padding id (`position_offset = pad_token_id + 1`;
transformers numbers the real tokens of a right-padded row exactly so), one
token type (`type_vocab_size=1`), and LayerNorm epsilon 1e-5. Its tensors are
renamed into BERT's layout (`hf_bert.py` maps them):

- `roberta.*` -> the encoder (`roberta.` stripped);
- `lm_head.{dense, layer_norm, bias, decoder}` -> `cls.predictions.*` (the
  same MLM head as BERT's, decoder tied to the word embeddings);
- `classifier.dense` -> `pooler.dense` and `classifier.out_proj` ->
  `classifier`: RoBERTa's classification head is dense + tanh on `<s>`, then
  the output layer, i.e. BERT's pooler + classifier. (It also has dropout
  before its dense layer, which BERT's pooler has not: the same at
  inference, slightly different in training.)
"""

from tfllm.convert import config_fields as fields
from tfllm.convert.errors import ConversionError
from tfllm.convert.hf_bert import encoder_fields
from tfllm.convert.hf_bert import normalize_names as bert_names

_RENAMES = (
    ("lm_head.dense.", "cls.predictions.transform.dense."),
    ("lm_head.layer_norm.", "cls.predictions.transform.LayerNorm."),
    ("lm_head.decoder.", "cls.predictions.decoder."),
    ("lm_head.bias", "cls.predictions.bias"),
    ("classifier.dense.", "pooler.dense."),
    ("classifier.out_proj.", "classifier."),
)


def config_from_hf(config, source="config.json"):
    """tfllm `Bert` kwargs for a HF RoBERTa config dict; refuses (naming the field) what tfllm cannot represent."""
    if config.get("model_type") != "roberta":
        raise ConversionError(f"{source}: model_type={config.get('model_type')!r} is not 'roberta'")
    kwargs = encoder_fields(config, source)
    pad = config.get("pad_token_id", 1)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ConversionError(f"{source}: pad_token_id={pad!r} is not valid (expected a token id)")
    kwargs.update(
        position_offset=pad + 1,
        num_segments=fields.size(config, "type_vocab_size", source, 1),
        layer_norm_epsilon=fields.positive(config, "layer_norm_eps", source, 1e-5),
    )
    if kwargs["max_sequence_length"] <= kwargs["position_offset"]:
        raise ConversionError(f"{source}: max_position_embeddings={kwargs['max_sequence_length']} leaves no "
                              f"position past pad_token_id={pad}")
    return kwargs


def normalize_names(tensors):
    """RoBERTa tensor names -> the BERT names `hf_bert.py` maps."""
    return bert_names(tensors, prefix="roberta.", renames=_RENAMES)
