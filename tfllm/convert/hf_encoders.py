"""Which converter reads a Hugging Face encoder folder: by its config's `model_type`.

Every family's converter has `config_from_hf(config, source)` (the `Bert`
kwargs, refusing what tfllm cannot represent) and `normalize_names(tensors)`
(its tensor names in BERT's layout, which `hf_bert.py` maps).
"""

from tfllm.convert import hf_bert
from tfllm.convert import hf_distilbert
from tfllm.convert import hf_electra
from tfllm.convert import hf_roberta
from tfllm.convert.errors import ConversionError

CONVERTERS = {"bert": hf_bert, "roberta": hf_roberta, "distilbert": hf_distilbert, "electra": hf_electra}


def encoder_converter(config, source="config.json"):
    """The converter module for `config["model_type"]` (a missing one is BERT, as in old BERT configs)."""
    model_type = config.get("model_type", "bert")
    if not isinstance(model_type, str) or model_type not in CONVERTERS:
        raise ConversionError(
            f"{source}: model_type={model_type!r} is not supported by tfllm as a BERT-style encoder "
            f"(supported: {', '.join(CONVERTERS)}; decoders: gpt2)")
    return CONVERTERS[model_type]
