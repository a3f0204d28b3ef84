"""`from_pretrained` and `save_pretrained`: published checkpoints in, tfllm models out.

A directory is recognised by the files in it:

- tfllm: `config.json` (with a "tfllm_class" entry) + `model.weights.h5`,
  tokenizer assets beside them (written by `save_pretrained`);
- Hugging Face: `config.json` + `model.safetensors` (or a sharded
  `model.safetensors.index.json`, or `pytorch_model.bin` read with
  `torch.load(weights_only=True)`);
- Google BERT: `bert_config.json` + `bert_model.ckpt.*` + `vocab.txt`.

The converters in `tfllm/convert/` map every source tensor by name and fail,
naming the field or weight, on a config tfllm cannot represent or a weight
that is missing or unexpected. Remote code is never run.

Example:
>>> bert = Bert.from_pretrained("bert-base-uncased/")                 # a HF folder
>>> clf = BertClassifier.from_pretrained("uncased_L-2_H-128_A-2/", num_classes=2)
>>> clf.save_pretrained("runs/tiny")   # tfllm folder, loads with from_pretrained
"""

import json
import os

from absl import logging

from tfllm.convert import ConversionError
from tfllm.convert import WeightPorter
from tfllm.convert import google_bert
from tfllm.convert import hf_bert
from tfllm.convert import hf_gpt2
from tfllm.convert.safetensors_io import WEIGHT_FILES
from tfllm.convert.safetensors_io import has_hf_weights
from tfllm.convert.safetensors_io import read_hf_weights
from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.bert.bert_classifier import BertClassifier
from tfllm.models.bert.bert_pretrainer import BertPretrainer
from tfllm.models.bert.bert_span_qa import BertSpanQA
from tfllm.models.bert.bert_token_classifier import BertTokenClassifier
from tfllm.models.gpt.gpt_backbone import Gpt
from tfllm.models.gpt.gpt_causal_lm import GptCausalLM
from tfllm.models.task import Task
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.word_piece import WordPieceTokenizer
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import save_vocabulary

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
TOKENIZER_CONFIG = "tfllm_tokenizer.json"
TASKS = ("bert", "bert_classifier", "bert_token_classifier", "bert_span_qa", "bert_pretrainer", "gpt",
         "gpt_causal_lm")
# The heads a tfllm folder can hold, by the class name save_pretrained records.
HEADS = {cls.__name__: cls for cls in (BertClassifier, BertTokenClassifier, BertSpanQA, BertPretrainer, GptCausalLM)}
HEADS_BY_TASK = {cls.pretrained_task: cls for cls in HEADS.values()}


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def detect_format(path):
    """"tfllm", "hf" or "google" for a model directory; an error listing what was looked for otherwise."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a directory (from_pretrained takes a model folder)")
    has = lambda name: os.path.exists(os.path.join(path, name))  # noqa: E731
    if has(CONFIG) and has(WEIGHTS) and "tfllm_class" in _read_json(os.path.join(path, CONFIG)):
        return "tfllm"
    if has(CONFIG) and has_hf_weights(path):
        return "hf"
    if has(google_bert.CONFIG_FILE) and google_bert.find_checkpoint(path):
        return "google"
    raise FileNotFoundError(
        f"{path}: no pretrained model found. Looked for: tfllm ({CONFIG} + {WEIGHTS}); Hugging Face "
        f"({CONFIG} + one of {', '.join(WEIGHT_FILES)}); Google BERT ({google_bert.CONFIG_FILE} + "
        f"bert_model.ckpt.index). Found: {sorted(os.listdir(path))[:20]}"
    )



def is_pretrained_dir(path):
    try:
        detect_format(path)
        return True
    except FileNotFoundError:
        return False


def load_model(path, task, **kwargs):
    """A tfllm model of kind `task` (one of TASKS) from any supported directory.

    Keyword args: `num_classes`, `pooling`, `classifier_dropout` (classifier
    head), `tokenizer` (GptCausalLM); anything else overrides the backbone
    config (e.g. `dropout=0.0`).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt == "tfllm":
        return _load_tfllm(path, task, **kwargs)
    if task.startswith("gpt"):
        if fmt != "hf":
            raise ConversionError(f"{path}: a Google BERT checkpoint cannot load as {task}")
        return _load_hf_gpt2(path, task, **kwargs)
    if fmt == "hf":
        config, source = _read_json(os.path.join(path, CONFIG)), os.path.join(path, CONFIG)
        tensors = read_hf_weights(path)
    else:
        config, tensors = google_bert.read_google_checkpoint(path)
        source = os.path.join(path, google_bert.CONFIG_FILE)
    return _load_bert(path, config, source, hf_bert.normalize_names(tensors), task, **kwargs)


def _load_bert(path, config, source, tensors, task, num_classes=None, pooling="cls",
               classifier_dropout=None, **overrides):
    kwargs = {**hf_bert.bert_config_from_hf(config, source), **overrides}
    if task == "bert_pretrainer" and kwargs["activation"] != "gelu":
        raise ConversionError(f"{source}: hidden_act={config.get('hidden_act')!r}: the tfllm MLM head uses exact GELU")
    backbone = Bert(**kwargs)
    porter = WeightPorter(tensors, path)
    hf_bert.port_backbone(porter, backbone)
    if task in ("bert", "bert_token_classifier", "bert_span_qa"):
        # Published token-classification and QA heads are not mapped yet: a
        # new head goes on the loaded encoder (the usual fine-tuning start).
        hf_bert.ignore_heads(porter, logging.info)
        porter.finish([backbone])
        if task == "bert":
            return backbone
        if classifier_dropout is None:
            classifier_dropout = config.get("classifier_dropout") or kwargs["dropout"]
        return _new_bert_head(path, backbone, task, num_classes, dropout=classifier_dropout)
    if task == "bert_pretrainer":
        model = BertPretrainer(backbone)
        hf_bert.port_pretraining_heads(porter, model)
        porter.finish([model])
        return model
    stored = hf_bert.num_labels(porter)
    if stored is None and num_classes is None:
        raise ConversionError(f"{path}: has no classifier.* weights; pass num_classes= for a new head")
    if stored is not None and num_classes not in (None, stored):
        raise ConversionError(f"{path}: its classifier has {stored} classes, num_classes={num_classes} given")
    if stored is not None and pooling != "cls":
        raise ConversionError(f"{path}: its classifier was trained on the [CLS] pooler; pooling={pooling!r} given")
    if classifier_dropout is None:
        classifier_dropout = config.get("classifier_dropout") or kwargs["dropout"]
    model = BertClassifier(backbone, num_classes or stored, pooling=pooling, dropout=classifier_dropout)
    if stored is None:
        hf_bert.ignore_heads(porter, logging.info)
        porter.finish([backbone])
        logging.info("%s: new randomly initialised %d-class head", path, num_classes)
    else:
        hf_bert.port_classifier_head(porter, model)
        porter.finish([model])
    return model


def _load_hf_gpt2(path, task, tokenizer=None, **overrides):
    config = _read_json(os.path.join(path, CONFIG))
    backbone = Gpt(**{**hf_gpt2.gpt_config_from_hf(config, os.path.join(path, CONFIG)), **overrides})
    porter = WeightPorter(hf_gpt2.normalize_names(read_hf_weights(path)), path)
    hf_gpt2.port_backbone(porter, backbone)
    porter.finish([backbone])
    if task == "gpt":
        return backbone
    return GptCausalLM(backbone, tokenizer=tokenizer or load_tokenizer_if_any(path))


def _load_tfllm(path, task, num_classes=None, pooling="cls", classifier_dropout=None, tokenizer=None,
                **overrides):
    spec = _read_json(os.path.join(path, CONFIG))
    saved = spec["tfllm_class"]
    family = "bert" if saved.startswith("Bert") else "gpt"
    if not task.startswith(family):
        raise ConversionError(f"{path}: holds a {saved}, which cannot load as {task}")
    backbone = (Bert if family == "bert" else Gpt).from_config({**spec["backbone"], **overrides})
    head = spec.get("head", {})
    model = HEADS[saved](backbone, **head) if saved in HEADS else backbone
    model.load_weights(os.path.join(path, WEIGHTS))
    if task in ("bert", "gpt"):
        return backbone
    if task == "gpt_causal_lm":
        return GptCausalLM(backbone, tokenizer=tokenizer or load_tokenizer_if_any(path))
    if task == "bert_pretrainer":
        if saved != "BertPretrainer":
            logging.info("%s: new randomly initialised MLM/NSP heads", path)
        return model if saved == "BertPretrainer" else BertPretrainer(backbone)
    if saved == HEADS_BY_TASK[task].__name__ and num_classes in (None, head.get("num_classes")):
        return model
    return _new_bert_head(path, backbone, task, num_classes, pooling, classifier_dropout)



def _new_bert_head(path, backbone, task, num_classes=None, pooling="cls", dropout=None):
    """A randomly initialised classifier, tagger or span head on a loaded backbone (logged)."""
    dropout = backbone.dropout if dropout is None else dropout
    if task == "bert_span_qa":
        logging.info("%s: new randomly initialised span head", path)
        return BertSpanQA(backbone)
    if num_classes is None:
        raise ConversionError(f"{path}: has no {HEADS_BY_TASK[task].__name__} head; pass num_classes= for a new one")
    logging.info("%s: new randomly initialised %d-class head", path, num_classes)
    if task == "bert_token_classifier":
        return BertTokenClassifier(backbone, num_classes, dropout=dropout)
    return BertClassifier(backbone, num_classes, pooling=pooling, dropout=dropout)


def save_pretrained(model, path, tokenizer=None):
    """Write `model` as a tfllm directory: config.json, model.weights.h5 and tokenizer assets.

    `tokenizer` (a WordPiece/BytePair tokenizer or a BertPreprocessor)
    defaults to a GptCausalLM's own tokenizer.
    """
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    backbone = model if isinstance(model, (Bert, Gpt)) else model.backbone
    head = model.head_config() if isinstance(model, Task) else {}
    if tokenizer is None and isinstance(model, GptCausalLM):
        tokenizer = model.tokenizer
    with open(os.path.join(path, CONFIG), "w", encoding="utf-8") as f:
        json.dump({"tfllm_class": type(model).__name__, "backbone": backbone.get_config(), "head": head}, f, indent=1)
    model.save_weights(os.path.join(path, WEIGHTS))
    if tokenizer is not None:
        save_tokenizer(tokenizer, path)
    return path


def save_tokenizer(tokenizer, path):
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a BertPreprocessor holds one
    if isinstance(tokenizer, WordPieceTokenizer):
        save_vocabulary(tokenizer.vocabulary, os.path.join(path, "vocab.txt"))
        spec = dict(type="wordpiece", lowercase=tokenizer.bert_lowercase,
                    strip_accents=tokenizer.bert_strip_accents, split_on_cjk=tokenizer.split_on_cjk)
    elif isinstance(tokenizer, BytePairTokenizer):
        save_byte_pair_vocabulary(dict(tokenizer.vocabulary), list(tokenizer.merges), path)
        spec = dict(type="bpe", special_tokens=tokenizer.special_token_strings)
    else:
        raise TypeError(f"cannot save a {type(tokenizer).__name__} with save_pretrained")
    with open(os.path.join(path, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)


def load_tokenizer_if_any(path):
    """The folder's tokenizer, or None if it has no tokenizer files."""
    try:
        return load_tokenizer(path)
    except FileNotFoundError:
        return None


def _guess_lowercase(path, vocab):
    """Google folders say "uncased"/"cased" in their name; else: no upper-case word in the vocabulary."""
    name = os.path.basename(os.path.normpath(path)).lower()
    if "uncased" in name:
        return True
    if "cased" in name:
        return False
    return not any(t.lower() != t for t in vocab if not (t.startswith("[") and t.endswith("]")))


def load_tokenizer(path, **overrides):
    """The tokenizer of a tfllm, Hugging Face or Google model directory.

    WordPiece (vocab.txt; lower-casing, accent stripping and CJK splitting from
    `tokenizer.json`'s normalizer or `tokenizer_config.json`) or GPT-2 byte-level
    BPE (vocab.json + merges.txt, or a BPE `tokenizer.json`). Keyword args
    override those settings (e.g. `lowercase=False`).
    """
    path = os.fspath(path)
    file = lambda name: os.path.join(path, name)  # noqa: E731
    has = lambda name: os.path.exists(file(name))  # noqa: E731
    if has(TOKENIZER_CONFIG):
        spec = _read_json(file(TOKENIZER_CONFIG))
        kind = spec.pop("type")
        if kind == "bpe":
            return BytePairTokenizer(file("vocab.json"), file("merges.txt"), **{**spec, **overrides})
        return WordPieceTokenizer(load_vocabulary(file("vocab.txt")), **{**spec, **overrides})
    hf_json = _read_json(file("tokenizer.json")) if has("tokenizer.json") else {}
    model = hf_json.get("model", {})
    if (has("vocab.json") and has("merges.txt")) or model.get("type") == "BPE":
        specials = [t["content"] for t in hf_json.get("added_tokens", []) if t.get("special")]
        if has("vocab.json") and has("merges.txt"):
            vocab, merges = file("vocab.json"), file("merges.txt")
        else:
            vocab = model["vocab"]
            merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        return BytePairTokenizer(vocab, merges, **{"special_tokens": specials or None, **overrides})
    if has("vocab.txt") or model.get("type") == "WordPiece":
        vocab = (load_vocabulary(file("vocab.txt")) if has("vocab.txt")
                 else [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])])
        normalizer = hf_json.get("normalizer") or {}
        config = _read_json(file("tokenizer_config.json")) if has("tokenizer_config.json") else {}
        if normalizer.get("type") == "BertNormalizer":
            settings = dict(lowercase=normalizer.get("lowercase", True),
                            strip_accents=normalizer.get("strip_accents"),
                            split_on_cjk=normalizer.get("handle_chinese_chars", True))
        elif "do_lower_case" in config:
            settings = dict(lowercase=config["do_lower_case"], strip_accents=config.get("strip_accents"),
                            split_on_cjk=config.get("tokenize_chinese_chars", True))
        else:
            settings = dict(lowercase=_guess_lowercase(path, vocab))
        return WordPieceTokenizer(vocab, **{**settings, **overrides})
    raise FileNotFoundError(
        f"{path}: no tokenizer found (looked for {TOKENIZER_CONFIG}, vocab.json + merges.txt, "
        "vocab.txt, tokenizer.json)"
    )
