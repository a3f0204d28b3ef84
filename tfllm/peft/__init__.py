"""Parameter-efficient fine-tuning: LoRA, bottleneck adapters and prefix tuning on tfllm models.

`apply_peft(model, "lora" | "adapter" | "prefix", ...)` adds the method and
freezes the backbone; `save_peft_weights`/`load_peft_weights` move only what
trained; `merge_lora(model)` folds LoRA into the base kernels before export.
Recipes take it as `--peft=...` (recipes/common.py).
See docs/peft.md.
"""

from tfllm.peft.layers import BottleneckAdapter
from tfllm.peft.layers import KeyValuePrefix
from tfllm.peft.layers import LoraUpdate
from tfllm.peft.methods import METHODS
from tfllm.peft.methods import add_adapters
from tfllm.peft.methods import add_lora
from tfllm.peft.methods import add_prefix
from tfllm.peft.methods import apply_peft
from tfllm.peft.methods import count_parameters
from tfllm.peft.methods import freeze_backbone
from tfllm.peft.methods import log_parameter_counts
from tfllm.peft.methods import merge_lora
from tfllm.peft.methods import peft_config
from tfllm.peft.methods import peft_weights
from tfllm.peft.weights import load_peft_weights
from tfllm.peft.weights import read_peft_config
from tfllm.peft.weights import save_peft_weights
