"""One folder format for every tfllm model, and loading published checkpoints.

A tfllm folder (what `save_pretrained` writes, and what every recipe's
`--model_dir` becomes) holds:

- `config.json`: `tfllm_class` (the class name), `model` (its Keras
  serialization: class and constructor config, backbone included), and what
  serving needs besides the weights: `tokenizer` (type and settings; its
  files sit beside, named relative to the folder), `preprocessor`
  (sequence length), `labels` (class or tag names in id order), `serving`
  (export defaults) and `peft` (the PEFT method applied, re-applied on load);
- the weights: `model.weights.h5`, written when training ends; a run still
  training (or stopped) has only its Trainer checkpoints in `checkpoints/`,
  and `load` then takes the latest.

`load(folder)` rebuilds the saved model with its tokenizer and settings;
`Task.from_pretrained(folder)` / `Bert.from_pretrained(folder)` give the
class asked for, with a new randomly initialised head (logged) when the
folder holds another one. The same calls read published checkpoints:

- Hugging Face (BERT, RoBERTa, DistilBERT, ELECTRA discriminators,
  GPT-2, and Llama / Mistral / Qwen2, by the config's `model_type`):
  `config.json` + `model.safetensors` (or a sharded
  `model.safetensors.index.json`, or `pytorch_model.bin` read with
  `torch.load(weights_only=True)`);
- Google BERT: `bert_config.json` + `bert_model.ckpt.*` + `vocab.txt`.

The converters in `tfllm/convert/` map every source tensor by name and fail,
naming the field or weight, on a config tfllm cannot represent or a weight
that is missing or unexpected. Remote code is never run.

This module imports no model class: callers pass the class they want, and
saved classes are found in Keras' registry of serializable objects, so the
models can import it without an import circle.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from tfllm.convert import WeightPorter
from tfllm.convert import google_bert
from tfllm.convert import hf_bert
from tfllm.convert import hf_gpt2
from tfllm.convert import hf_llama
from tfllm.convert.config_fields import read_json
from tfllm.convert.hf_encoders import encoder_converter
from tfllm.convert.safetensors_io import WEIGHT_FILES
from tfllm.convert.safetensors_io import has_hf_weights
from tfllm.convert.safetensors_io import read_hf_weights
from tfllm.errors import CheckpointError
from tfllm.errors import ConfigError
from tfllm.errors import ConversionError
from tfllm.hub import resolve_model_path
from tfllm.models.bert.preprocessors import preprocessor_for
from tfllm.peft.methods import apply_peft
from tfllm.peft.methods import peft_config
from tfllm.tokenizers.saving import load_tokenizer_if_any
from tfllm.tokenizers.saving import save_tokenizer
from tfllm.tokenizers.saving import tokenizer_from_spec

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
CHECKPOINTS = "checkpoints"
# The heads whose only constructor argument besides the backbone is an optional tokenizer.
CAUSAL_LM_TASKS = ("gpt_causal_lm", "llama_causal_lm")


# ---- The tfllm folder -------------------------------------------------------


@dataclasses.dataclass
class LoadedModel:
    """What `load` returns: the model with its weights, its tokenizer, and the folder's settings."""

    model: keras.Model
    tokenizer: object
    config: dict
    weights: str  # the weights file or checkpoint the weights came from

    @property
    def labels(self):
        return self.config.get("labels")

    @property
    def serving(self):
        return self.config.get("serving") or {}

    def preprocessor(self, sequence_length=None):
        """The `BertPreprocessor` (RoBERTa: `RobertaPreprocessor`) a run used (its tokenizer; `sequence_length`
        overrides the saved one)."""
        saved = (self.config.get("preprocessor") or {}).get("sequence_length", 128)
        return preprocessor_for(self.tokenizer, sequence_length=sequence_length or saved)


def save_config(model, folder, tokenizer=None, sequence_length=None, labels=None, serving=None,
                tokenizer_file=None):
    """Write `folder/config.json` and the tokenizer's files: everything `load` needs but the weights.

    Args:
        model: the model (its class and config are saved; PEFT layers are noted).
        tokenizer: a tokenizer or `BertPreprocessor` (default: `model.tokenizer` if any).
        sequence_length: a BERT preprocessor's length (default: the preprocessor's).
        labels: class or tag names in id order.
        serving: export defaults (e.g. `max_query_length`).
        tokenizer_file: a SentencePiece tokenizer's model file (copied in).
    """
    folder = os.fspath(folder)
    tf.io.gfile.makedirs(folder)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if sequence_length is None and hasattr(tokenizer, "sequence_length"):
        sequence_length = tokenizer.sequence_length
    peft = peft_config(model)
    spec = {
        "tfllm_class": type(model).__name__,
        "model": keras.saving.serialize_keras_object(model),
        "tokenizer": save_tokenizer(tokenizer, folder, tokenizer_file) if tokenizer is not None else None,
        "preprocessor": {"sequence_length": sequence_length} if sequence_length else None,
        "labels": list(labels) if labels is not None else None,
        "serving": dict(serving or {}),
        "peft": dict(peft) if peft and peft["method"] != "none" else None,
    }
    path = os.path.join(folder, CONFIG)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(spec, f, indent=1, ensure_ascii=False)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return path


def save_weights(model, folder):
    """Write `folder/model.weights.h5` (the final weights that `load` prefers to checkpoints)."""
    path = os.path.join(os.fspath(folder), WEIGHTS)
    model.save_weights(path)
    return path


def save_pretrained(model, folder, tokenizer=None, **settings):
    """`save_config` + `save_weights`: a complete folder that `load` and `from_pretrained` read."""
    save_config(model, folder, tokenizer, **settings)
    save_weights(model, folder)
    return os.fspath(folder)


def read_config(folder):
    path = os.path.join(os.fspath(folder), CONFIG)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {folder} a tfllm model folder or recipe --model_dir?")
    spec = read_json(path, ConfigError)
    if "tfllm_class" not in spec or "model" not in spec:
        raise ConfigError(f"{path}: not a tfllm config (no tfllm_class/model entries)")
    model = spec["model"]
    if not (isinstance(model, dict) and isinstance(model.get("class_name"), str)
            and isinstance(model.get("config"), dict)):
        raise ConfigError(f"{path}: model is not a Keras serialization (an object with class_name and config)")
    return spec


def build(spec, overrides=None, tokenizer=None, source=CONFIG):
    """The untrained model a config.json (`source`, for errors) describes; `overrides` replace backbone values."""
    serialized = json.loads(json.dumps(spec["model"]))  # a deep copy to edit
    if overrides:
        inner = serialized["config"]
        backbone = inner.get("backbone")
        target = backbone["config"] if isinstance(backbone, dict) and isinstance(backbone.get("config"), dict) \
            else inner
        unknown = sorted(set(overrides) - set(target))
        if unknown:
            raise ConfigError(f"{spec['tfllm_class']} has no config field(s) {', '.join(unknown)} to override")
        target.update(_dropout_overrides(overrides, target))
    try:
        model = keras.saving.deserialize_keras_object(serialized)
    except (TypeError, ValueError, KeyError) as e:  # a missing or wrong field in the saved model config
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{source}: cannot rebuild {spec['tfllm_class']} from its model config: {reason}") from None
    if hasattr(model, "tokenizer") and tokenizer is not None:
        model.tokenizer = tokenizer
    if spec.get("peft"):  # the same PEFT layers, so the saved weights have a place
        options = {k: v for k, v in spec["peft"].items() if k not in ("method", "merged")}
        apply_peft(model, spec["peft"]["method"], **options)
    return model


def _dropout_overrides(overrides, config):
    """`overrides` in which `dropout` also sets the attention-probability dropout, unless that is given too.

    A published BERT config states both rates (`hidden_dropout_prob`,
    `attention_probs_dropout_prob`), so a loaded backbone has an explicit
    `attention_dropout`; `dropout=0.0` alone would have left it at 0.1, and
    training would not be deterministic. `attention_dropout=None` follows `dropout`.
    """
    if "dropout" in overrides and "attention_dropout" in config and "attention_dropout" not in overrides:
        return {**overrides, "attention_dropout": None}
    return overrides


def load(folder, checkpoint=None, **overrides):
    """The model saved in a tfllm folder (a recipe's --model_dir or a save_pretrained folder).

    Weights come from `checkpoint` (a prefix, or a folder: its latest) if
    given, else `model.weights.h5`, else the latest checkpoint in
    `checkpoints/`. Keyword args override backbone config values (e.g.
    `dropout=0.0`). Returns a `LoadedModel` (model, tokenizer, config, weights).
    """
    folder = os.fspath(resolve_model_path(folder))  # hf://org/name[@revision] -> its folder in the Hub cache
    spec = read_config(folder)
    tokenizer = tokenizer_from_spec(folder, spec["tokenizer"]) if spec.get("tokenizer") else None
    model = build(spec, overrides, tokenizer, source=os.path.join(folder, CONFIG))
    weights_file = os.path.join(folder, WEIGHTS)
    if checkpoint is None and tf.io.gfile.exists(weights_file):
        model.load_weights(weights_file)
        weights = weights_file
    else:
        weights = find_checkpoint(folder, checkpoint)
        restore_checkpoint(model, weights)
    return LoadedModel(model, tokenizer, spec, weights)


def find_checkpoint(folder, checkpoint=None):
    """`checkpoint` (a prefix, or a folder: its latest) or else the latest in `folder/checkpoints`."""
    if checkpoint and tf.io.gfile.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            raise CheckpointError(f"{checkpoint}: no checkpoint in this folder")
        return latest
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise CheckpointError(f"{checkpoint}: no such checkpoint (expected a prefix with a .index file, "
                                  f"e.g. <model_dir>/{CHECKPOINTS}/ckpt-1000, or a folder)")
        return checkpoint
    latest = tf.train.latest_checkpoint(os.path.join(folder, CHECKPOINTS))
    if latest is None:
        raise CheckpointError(f"{folder}: no weights yet (neither {WEIGHTS} nor a checkpoint in {CHECKPOINTS}/)")
    return latest


def restore_checkpoint(model, checkpoint):
    """Load `model`'s weights from a Trainer checkpoint; every weight of the model must be found."""
    status = tf.train.Checkpoint(model=model).read(checkpoint)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise CheckpointError(f"{checkpoint} does not hold every weight of the model its config describes "
                              f"(a different run?): {str(e).splitlines()[0][:300]}") from None
    status.expect_partial()  # optimizer slots, step, data iterator


# ---- Any format, as the class asked for ---------------------------------------


def detect_format(path):
    """"tfllm", "hf" or "google" for a model directory; an error listing what was looked for otherwise."""
    path = os.fspath(resolve_model_path(path))  # hf://org/name[@revision] -> its folder in the Hub cache
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{path}: not a directory (from_pretrained takes a model folder)")

    def has(name):
        return tf.io.gfile.exists(os.path.join(path, name))

    if has(CONFIG):
        if "tfllm_class" in read_json(os.path.join(path, CONFIG), ConfigError):
            return "tfllm"
        if has_hf_weights(path):
            return "hf"
    if has(google_bert.CONFIG_FILE) and google_bert.find_checkpoint(path):
        return "google"
    raise FileNotFoundError(
        f"{path}: no pretrained model found. Looked for: tfllm ({CONFIG} with tfllm_class); Hugging Face "
        f"({CONFIG} + one of {', '.join(WEIGHT_FILES)}); Google BERT ({google_bert.CONFIG_FILE} + "
        f"bert_model.ckpt.index). Found: {sorted(tf.io.gfile.listdir(path))[:20]}"
    )


def is_pretrained_dir(path):
    try:
        detect_format(path)
        return True
    except FileNotFoundError:
        return False


def load_model(path, cls, new_head=True, **kwargs):
    """A `cls` model (a backbone or a task class) from any supported folder.

    `new_head=False` refuses a folder without a `cls` head of its own (e.g.
    cloze prompting needs the pretrained masked-LM head, not a random one).
    Keyword args: the head's constructor arguments (`num_classes`, `pooling`,
    `dropout` or its alias `classifier_dropout`; `tokenizer` for
    GptCausalLM and LlamaCausalLM); anything else overrides the backbone config (e.g.
    `dropout=0.0` for a backbone class).
    """
    path = os.fspath(resolve_model_path(path))  # hf://org/name[@revision] -> its folder in the Hub cache

    backbone_cls = getattr(cls, "backbone_class", None) or cls
    head_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _head_arg_names(cls)}
    if "classifier_dropout" in head_kwargs:
        head_kwargs["dropout"] = head_kwargs.pop("classifier_dropout")
    fmt = detect_format(path)
    if fmt == "tfllm":
        return _from_tfllm(path, cls, backbone_cls, head_kwargs, kwargs, new_head)
    if backbone_cls.pretrained_task not in ("bert", "gpt", "llama"):
        raise ConversionError(f"{path}: a {cls.__name__} loads only from a tfllm folder")
    if backbone_cls.pretrained_task in DECODER_CONVERTERS:
        if fmt != "hf":
            raise ConversionError(f"{path}: a Google BERT checkpoint cannot load as {cls.__name__}")
        return _from_hf_decoder(path, cls, backbone_cls, head_kwargs, kwargs)
    if fmt == "hf":
        config, source = read_json(os.path.join(path, CONFIG)), os.path.join(path, CONFIG)
        converter = encoder_converter(config, source)  # BERT, RoBERTa, DistilBERT or ELECTRA, by model_type
        tensors = read_hf_weights(path)
    else:
        config, tensors = google_bert.read_google_checkpoint(path)
        source = os.path.join(path, google_bert.CONFIG_FILE)
        converter = hf_bert
    return _from_bert_checkpoint(path, cls, backbone_cls, config, source, converter,
                                 converter.normalize_names(tensors), head_kwargs, kwargs, new_head)


def _head_arg_names(cls):
    if getattr(cls, "backbone_class", None) is None:
        return ()
    return (*cls.head_args, "classifier_dropout", "tokenizer")


def _from_tfllm(path, cls, backbone_cls, head_kwargs, overrides, new_head=True):
    saved = load(path, **overrides)
    model = saved.model
    backbone = getattr(model, "backbone", model)
    if type(model) is cls and all(getattr(model, k, None) == v for k, v in head_kwargs.items() if k != "tokenizer"):
        if "tokenizer" in head_kwargs:
            model.tokenizer = head_kwargs["tokenizer"]
        return model
    if type(backbone) is not backbone_cls:
        raise ConversionError(f"{path}: holds a {type(model).__name__}, which cannot load as {cls.__name__}")
    if cls is backbone_cls:
        return backbone
    if cls.pretrained_task in CAUSAL_LM_TASKS:
        return cls(backbone, tokenizer=head_kwargs.get("tokenizer") or saved.tokenizer)
    return _new_head(path, cls, backbone, head_kwargs, new_head, f"a {type(model).__name__}")


def _new_head(path, cls, backbone, head_kwargs, allowed=True, holds="an encoder"):
    """A randomly initialised head of class `cls` on a loaded backbone (logged), if `allowed`."""
    if not allowed:
        raise ConversionError(f"{path}: holds {holds} without a {cls.__name__} head, and a new random one "
                              "would make the results meaningless here")
    if "num_classes" in cls.head_args and head_kwargs.get("num_classes") is None:
        raise ConversionError(f"{path}: has no {cls.__name__} head; pass num_classes= for a new one")
    if "dropout" in cls.head_args and head_kwargs.get("dropout") is None:
        head_kwargs = dict(head_kwargs, dropout=backbone.dropout)
    logging.info("%s: new randomly initialised %s head%s", path, cls.__name__,
                 f" ({head_kwargs['num_classes']} classes)" if "num_classes" in head_kwargs else "")
    return cls(backbone, **head_kwargs)


def _from_bert_checkpoint(path, cls, backbone_cls, config, source, converter, tensors, head_kwargs, overrides,
                          new_head=True):
    """A BERT-style encoder (and the head `cls` asks for) from BERT-named `tensors` and a `converter`'s config."""
    kwargs = converter.config_from_hf(config, source)
    kwargs.update(_dropout_overrides(overrides, kwargs))
    task = cls.pretrained_task
    if task in ("bert_pretrainer", "bert_masked_lm") and kwargs["activation"] != "gelu":
        raise ConversionError(f"{source}: hidden_act={config.get('hidden_act')!r}: the tfllm MLM head uses exact GELU")
    backbone = backbone_cls(**kwargs)
    porter = WeightPorter(tensors, path)
    hf_bert.port_backbone(porter, backbone, logging.info)
    if head_kwargs.get("dropout") is None and "dropout" in getattr(cls, "head_args", ()):
        dropout = config.get("classifier_dropout") or config.get("seq_classif_dropout")  # DistilBERT's name
        head_kwargs = dict(head_kwargs, dropout=dropout or kwargs["dropout"])
    if task in ("bert_pretrainer", "bert_masked_lm", "electra_discriminator"):
        model = cls(backbone)
        if task == "bert_pretrainer":
            hf_bert.port_pretraining_heads(porter, model)
        elif task == "bert_masked_lm":
            hf_bert.port_mlm_head(porter, model.mlm_head)
        else:
            hf_bert.port_discriminator_head(porter, model)
        hf_bert.ignore_heads(porter, logging.info)  # e.g. NSP weights, loading BertMaskedLM from BertForPreTraining
        porter.finish([model])
        return model
    stored = hf_bert.num_labels(porter) if task == "bert_classifier" else None
    if stored is None:
        # Published token-classification and QA heads are not mapped yet: a
        # new head goes on the loaded encoder (the usual fine-tuning start).
        hf_bert.ignore_heads(porter, logging.info)
        porter.finish([backbone])
        return backbone if cls is backbone_cls else _new_head(path, cls, backbone, head_kwargs, new_head)
    num_classes, pooling = head_kwargs.get("num_classes"), head_kwargs.get("pooling", "cls")
    if num_classes not in (None, stored):
        raise ConversionError(f"{path}: its classifier has {stored} classes, num_classes={num_classes} given")
    if pooling != "cls":
        raise ConversionError(f"{path}: its classifier was trained on the [CLS] pooler; pooling={pooling!r} given")
    model = cls(backbone, **dict(head_kwargs, num_classes=stored))
    hf_bert.port_classifier_head(porter, model)
    porter.finish([model])
    return model


# Decoder families: the converter module and its config mapping, by backbone_cls.pretrained_task.
DECODER_CONVERTERS = {"gpt": (hf_gpt2, hf_gpt2.gpt_config_from_hf), "llama": (hf_llama, hf_llama.llama_config_from_hf)}


def _from_hf_decoder(path, cls, backbone_cls, head_kwargs, overrides):
    """A GPT-2 or Llama / Mistral / Qwen2 folder as `cls` (the backbone, or its causal LM with the folder's tokenizer).

    Llama-family tokenizers (Llama 3 / Qwen2 / SmolLM `tokenizer.json`,
    Llama 2 / Mistral `tokenizer.model`) load in-graph; one tfllm cannot
    reproduce is logged and the model loads without it (generate() then
    takes token ids); a GPT-2 folder's tokenizer must load.
    """
    task = backbone_cls.pretrained_task
    converter, config_from_hf = DECODER_CONVERTERS[task]
    source = os.path.join(path, CONFIG)
    backbone = backbone_cls(**{**config_from_hf(read_json(source), source), **overrides})
    porter = WeightPorter(converter.normalize_names(read_hf_weights(path)), path)
    converter.port_backbone(porter, backbone)
    porter.finish([backbone])
    if cls is backbone_cls:
        return backbone
    tokenizer = head_kwargs.get("tokenizer")
    if tokenizer is None:
        try:
            tokenizer = load_tokenizer_if_any(path)
        except ConfigError as e:
            if task == "gpt":
                raise
            logging.warning("%s; the model loads without a tokenizer (generate() then takes token ids)", e)
    return cls(backbone, tokenizer=tokenizer)


class PretrainedMixin:
    """`from_pretrained` and `save_pretrained` for backbones and tasks (see this module's docstring)."""

    # The kind of model this class loads as ("bert", "gpt", "bert_classifier", ...).
    pretrained_task = None

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """This model from a tfllm, Hugging Face or Google folder.

        The folder's own head when it has one of this kind, else a new,
        randomly initialised head (logged) on the loaded backbone. Keyword
        args: head arguments, or backbone config overrides (e.g. `dropout`).
        """
        return load_model(path, cls, **kwargs)

    def save_pretrained(self, path, tokenizer=None, **settings):
        """Write config.json + model.weights.h5 (+ tokenizer files) that `from_pretrained` and `load` read."""
        return save_pretrained(self, path, tokenizer, **settings)
