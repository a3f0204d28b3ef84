"""What a BERT fine-tuning run writes beside its checkpoints so tools/export.py can rebuild the model.

`<model_dir>/bert_run.json` holds the task, the backbone config, the head's
settings, the preprocessor (vocabulary, casing, sequence length) and the
labels: everything but the weights, which come from the run's checkpoints.
"""

import json
import os

import tensorflow as tf

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.bert.bert_classifier import BertClassifier
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.bert.bert_span_qa import BertSpanQA
from tfllm.models.bert.bert_token_classifier import BertTokenClassifier

CONFIG_FILE = "bert_run.json"
TASKS = ("classifier", "tagger", "span_qa")


def save_run_config(model_dir, task, model, preprocessor, labels=None, **serving):
    """Write `model_dir/bert_run.json` (chief only).

    Args:
        task: "classifier", "tagger" or "span_qa".
        model: the `BertClassifier`, `BertTokenClassifier` or `BertSpanQA`.
        preprocessor: the `BertPreprocessor` the run uses.
        labels: class names in id order (classifier: optional; tagger: the tags).
        **serving: export defaults, e.g. `max_query_length`, `max_answer_length`.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    head = {}
    if task in ("classifier", "tagger"):
        head = dict(num_classes=model.num_classes, dropout=model.dropout)
    if task == "classifier":
        head["pooling"] = model.pooling
    spec = {
        "task": task,
        "backbone": model.backbone.get_config(),
        "head": head,
        "preprocessor": dict(vocabulary=list(preprocessor.tokenizer.vocabulary),
                             sequence_length=preprocessor.sequence_length, lowercase=preprocessor.lowercase,
                             strip_accents=preprocessor.strip_accents),
        "labels": list(labels) if labels else None,
        "serving": serving,
        "peft": _peft_config(model),
    }
    tf.io.gfile.makedirs(model_dir)
    path = os.path.join(model_dir, CONFIG_FILE)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(spec, f, indent=1, ensure_ascii=False)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return path


def _peft_config(model):
    """The `--peft` method a recipe applied (tfllm.peft), or None."""
    from tfllm.peft import peft_config  # noqa: PLC0415  (peft imports models)

    config = peft_config(model)
    return None if not config or config["method"] == "none" else dict(config)


def read_run_config(model_dir):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {model_dir} the --model_dir of recipes/classify.py, "
                                "tag.py or qa.py (run after this file was introduced)?")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def build_model(spec):
    """The untrained model and preprocessor that `spec` (a bert_run.json) describes."""
    preprocessor = BertPreprocessor(**spec["preprocessor"])
    backbone = Bert.from_config(spec["backbone"])
    task, head = spec["task"], spec["head"]
    if task == "classifier":
        model = BertClassifier(backbone, head["num_classes"], pooling=head["pooling"], dropout=head["dropout"])
    elif task == "tagger":
        model = BertTokenClassifier(backbone, head["num_classes"], dropout=head["dropout"])
    elif task == "span_qa":
        model = BertSpanQA(backbone)
    else:
        raise ValueError(f"{CONFIG_FILE}: unknown task {task!r} (expected one of {TASKS})")
    if spec.get("peft"):  # the same PEFT layers, so the checkpoint's weights have a place
        from tfllm.peft import apply_peft  # noqa: PLC0415

        options = {k: v for k, v in spec["peft"].items() if k not in ("method", "merged")}
        apply_peft(model, spec["peft"]["method"], **options)
    return model, preprocessor


def find_checkpoint(model_dir, checkpoint=None):
    """`checkpoint` (a prefix, or a folder: its latest) or else the latest in `model_dir/checkpoints`."""
    for folder in ([checkpoint] if checkpoint else []) + [os.path.join(model_dir, "checkpoints")]:
        if tf.io.gfile.isdir(folder):
            latest = tf.train.latest_checkpoint(folder)
            if latest is None:
                raise FileNotFoundError(f"{folder}: no checkpoint in this folder")
            return latest
        if checkpoint:
            break
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise FileNotFoundError(f"{checkpoint}: no such checkpoint (expected a prefix with a .index file, "
                                    "e.g. <model_dir>/checkpoints/ckpt-1000, or a folder)")
        return checkpoint
    raise FileNotFoundError(f"{model_dir}/checkpoints: no checkpoint yet")


def restore(model, checkpoint):
    """Load `model`'s weights from a Trainer checkpoint; every weight of the model must be found."""
    status = tf.train.Checkpoint(model=model).read(checkpoint)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"{checkpoint} does not hold every weight of the model described by "
                         f"{CONFIG_FILE} (different run?): {str(e)[:500]}") from None
    status.expect_partial()  # optimizer slots, step, data iterator


def load_run(model_dir, checkpoint=None, spec=None):
    """Rebuild the model of a classify/tag/qa run (`spec`: its bert_run.json, read if None) and restore a checkpoint.

    Returns `(model, preprocessor, spec, checkpoint path)`; `spec` is the
    run's bert_run.json (task, labels, serving defaults). A LoRA run comes
    back with LoRA merged into the base kernels (plain weights to export).
    """
    spec = spec or read_run_config(model_dir)
    model, preprocessor = build_model(spec)
    path = find_checkpoint(model_dir, checkpoint)
    restore(model, path)
    if spec.get("peft"):
        from tfllm.peft import merge_lora  # noqa: PLC0415

        merge_lora(model)
    return model, preprocessor, spec, path
