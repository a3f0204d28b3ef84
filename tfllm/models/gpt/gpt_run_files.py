"""What a GPT training run writes beside its checkpoints so generate/export can rebuild the model."""

import json
import os

import tensorflow as tf

from tfllm.models.gpt.gpt_backbone import Gpt
from tfllm.models.gpt.gpt_causal_lm import GptCausalLM
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.char_tokenizer import CharTokenizer

CONFIG_FILE = "gpt_config.json"


def save_run_config(model_dir, backbone, tokenizer):
    """model_dir/gpt_config.json: the backbone config and the tokenizer's."""
    spec = {"backbone": backbone.get_config(), "tokenizer": {
        "class": type(tokenizer).__name__, "config": tokenizer.get_config()}}
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
        json.dump(spec, f, indent=1)


def load_run(model_dir):
    """Rebuild the GptCausalLM (with tokenizer) of a train_gpt run and restore its latest checkpoint."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {model_dir} a recipes/train_gpt.py --model_dir?")
    with tf.io.gfile.GFile(path) as f:
        spec = json.load(f)
    tokenizer_classes = {"CharTokenizer": CharTokenizer, "BytePairTokenizer": BytePairTokenizer}
    tok_spec = spec["tokenizer"]
    if tok_spec["class"] not in tokenizer_classes:
        raise ValueError(f"{path}: unknown tokenizer class {tok_spec['class']!r}")
    tokenizer = tokenizer_classes[tok_spec["class"]].from_config(tok_spec["config"])
    lm = GptCausalLM(Gpt.from_config(spec["backbone"]), tokenizer=tokenizer)
    checkpoint = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(f"{model_dir}/checkpoints: no checkpoint yet")
    tf.train.Checkpoint(model=lm).read(checkpoint).expect_partial()
    return lm, checkpoint
