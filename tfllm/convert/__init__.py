"""Checkpoint converters: Hugging Face and original Google BERT weights into tfllm models.

One file per source layout (`hf_bert.py`, `hf_roberta.py`, `hf_distilbert.py`,
`hf_electra.py`, `hf_gpt2.py`, `google_bert.py`; `hf_encoders.py` picks the
encoder's by `model_type`);
`safetensors_io.py` reads HF weight files, `config_fields.py` checks config
values (naming the file and field), and `weight_porter.py` checks that
every source tensor lands in exactly one model variable. The user-facing
entry point is `from_pretrained` (`tfllm/models/pretrained.py`).
"""

from tfllm.convert.errors import ConversionError
from tfllm.convert.safetensors_io import read_hf_weights
from tfllm.convert.weight_porter import WeightPorter
