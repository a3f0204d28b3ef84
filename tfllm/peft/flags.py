"""The `--peft` flags every BERT fine-tuning recipe takes, and the two calls that use them.

In a recipe:

    peft.define_flags()                         # next to the other flags
    ...
    with strategy.scope():
        model = BertClassifier(backbone, ...)
        peft.apply_flags(FLAGS, model)          # before the optimizer and Trainer
    ...
    trainer.train(...)
    peft.save_flags(FLAGS, model, strategy)     # <model_dir>/peft_weights.npz
"""

import os

from absl import flags
from absl import logging

from tfllm.peft.methods import ATTENTION_PROJECTIONS
from tfllm.peft.methods import METHODS
from tfllm.peft.methods import apply_peft
from tfllm.peft.methods import log_parameter_counts
from tfllm.peft.weights import save_peft_weights
from tfllm.training.strategy import is_chief

PEFT_WEIGHTS_FILE = "peft_weights.npz"


def define_flags():
    flags.DEFINE_enum("peft", "none", list(METHODS), "Parameter-efficient fine-tuning: none (train everything), "
                      "lora, adapter or prefix (backbone frozen; PEFT weights and the task head train).")
    flags.DEFINE_integer("lora_rank", 8, "--peft=lora: rank r of each update.")
    flags.DEFINE_float("lora_alpha", 16.0, "--peft=lora: updates are scaled by alpha / rank.")
    flags.DEFINE_float("lora_dropout", 0.0, "--peft=lora: dropout on the LoRA path's input.")
    flags.DEFINE_list("lora_targets", list(ATTENTION_PROJECTIONS), "--peft=lora: projections to adapt: query, key, "
                      "value, attention_output, intermediate, output, or groups attention, ffn, all.")
    flags.DEFINE_integer("adapter_size", 64, "--peft=adapter: bottleneck width of each adapter.")
    flags.DEFINE_integer("prefix_length", 16, "--peft=prefix: learned key/value positions per layer.")


def options_from_flags(FLAGS):
    """The `apply_peft` keyword arguments for --peft."""
    return {
        "none": {},
        "lora": dict(rank=FLAGS.lora_rank, alpha=FLAGS.lora_alpha, dropout=FLAGS.lora_dropout,
                     targets=FLAGS.lora_targets),
        "adapter": dict(size=FLAGS.adapter_size),
        "prefix": dict(length=FLAGS.prefix_length),
    }[FLAGS.peft]


def apply_flags(FLAGS, model):
    """Apply --peft to `model` (inside the strategy scope, before the optimizer) and log the parameter counts."""
    config = apply_peft(model, FLAGS.peft, **options_from_flags(FLAGS))
    log_parameter_counts(model, prefix=f"PEFT {config}: ")
    return config


def save_flags(FLAGS, model, strategy):
    """With --peft other than none, write the PEFT weights + head to <model_dir>/peft_weights.npz (chief only)."""
    if FLAGS.peft == "none" or not is_chief(strategy):
        return None
    path = save_peft_weights(model, os.path.join(FLAGS.model_dir, PEFT_WEIGHTS_FILE))
    logging.info("Saved the PEFT weights and task head to %s", path)
    return path
