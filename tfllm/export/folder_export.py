"""Export whatever a model folder holds: the one function behind tools/export.py.

A tfllm folder (a recipe's --model_dir or `save_pretrained`) is exported as
its saved class allows (`EXPORTS`); a published Hugging Face / Google BERT
folder as sentence embeddings, or as its stored classifier.
"""

from tfllm.errors import ConfigError
from tfllm.export.classifier_export import export_classifier
from tfllm.export.embeddings_export import export_embeddings
from tfllm.export.gpt_export import export_gpt
from tfllm.export.serving_precision import DESCRIPTIONS
from tfllm.export.serving_precision import quantize_int8
from tfllm.export.serving_precision import resolve_serving_precision
from tfllm.export.serving_precision import saved_policy
from tfllm.export.serving_precision import spec_of
from tfllm.export.span_qa_export import export_span_qa
from tfllm.export.tagger_export import export_tagger
from tfllm.export.translation_export import export_translator
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import LoadedModel
from tfllm.models import cast_weights
from tfllm.models import load
from tfllm.models.pretrained import detect_format
from tfllm.models.pretrained import read_config
from tfllm.models.weight_casting import dtype_policy
from tfllm.peft import merge_lora
from tfllm.tokenizers import load_tokenizer

# The one place that names the heads: a saved model's class -> what it can be
# exported as, the default first (any BERT encoder also serves embeddings).
EXPORTS = {
    "BertClassifier": ("classifier", "embeddings"),
    "BertTokenClassifier": ("tagger", "embeddings"),
    "BertSpanQA": ("span_qa", "embeddings"),
    "BertPretrainer": ("embeddings",),
    "BertMaskedLM": ("embeddings",),
    "ElectraDiscriminator": ("embeddings",),
    "Bert": ("embeddings",),
    "GptCausalLM": ("gpt",),
    "LlamaCausalLM": ("gpt",),  # the "gpt" export is any causal LM's generation
    "Seq2SeqTransformer": ("translator",),
}
HEADS = tuple(dict.fromkeys(head for heads in EXPORTS.values() for head in heads))


def saved_class(folder, fmt, head=None):
    """The class name a folder (of `detect_format` kind `fmt`) loads as: a tfllm folder's own; a published
    one's encoder or classifier."""
    if fmt == "tfllm":
        return read_config(folder)["tfllm_class"]
    if head not in (None, "embeddings", "classifier"):
        raise ConfigError(f"--head={head} needs a tfllm folder (a recipe's --model_dir); {folder} is a published "
                          "checkpoint (exports for it: embeddings, classifier)")
    return "BertClassifier" if head == "classifier" else "Bert"


def choose_head(folder, fmt, head=None):
    """`head`, checked against what the folder's model can be exported as, or its default."""
    saved = saved_class(folder, fmt, head)
    heads = EXPORTS.get(saved, ())
    if (head or (heads[0] if heads else None)) not in heads:
        raise ConfigError(f"--head={head} cannot be exported from {folder}: it holds a {saved} "
                          f"(exports for it: {', '.join(heads) or 'none'})")
    return saved, head or heads[0]


def load_folder(folder, fmt, saved, checkpoint=None, **overrides):
    """The folder's model as a `LoadedModel`: a tfllm folder as saved, a published one as `saved` names.
    `overrides` replace backbone config values (e.g. `dtype`)."""
    if fmt == "tfllm":
        return load(folder, checkpoint=checkpoint, **overrides)
    model = (BertClassifier if saved == "BertClassifier" else Bert).from_pretrained(folder, **overrides)
    return LoadedModel(model, load_tokenizer(folder), spec_of(model, saved), folder)


def export_folder(folder, export_dir, head=None, model_name=None, version=1, checkpoint=None, warmup=True,
                  max_seq_length=None, label_names=None, serving_precision="float32", token_ids_signatures=False,
                  split_punctuation=True, max_query_length=None, max_answer_length=None, max_new_tokens=128,
                  temperature=0.0, top_k=0, seed=0, num_beams=None, length_penalty=None, max_source_length=None,
                  log=print):
    """Export the model in `folder` to `export_dir/<model_name>/<version>/`; returns that path.

    `head` chooses among the exports the saved class allows (default: its
    first). Weights: `checkpoint` if given, else the folder's final weights,
    else its latest checkpoint. The other arguments are the head's options
    (see each `export_*` function); unset ones take the run's saved values.
    `serving_precision` ("float32", "bfloat16" or "int8"; also "fp32",
    "bf16"; tfllm.export.serving_precision) is what the encoder heads compute
    in, whatever policy the model was trained under. The gpt export takes
    float32 or bfloat16 (`export_gpt`'s `precision`: `cast_weights`, decoding
    without XLA); the translator export is float32 only for now.
    """
    precision = resolve_serving_precision(serving_precision)
    fmt = detect_format(folder)  # once: each call reads config.json and lists the folder
    saved, head = choose_head(folder, fmt, head)
    if (head == "translator" and precision != "float32") or (head == "gpt" and precision == "int8"):
        raise ConfigError(f"--serving_precision={serving_precision}: the {head} export is "
                          f"{'float32 or bfloat16' if head == 'gpt' else 'float32 only'} for now "
                          "(bfloat16/int8 serve the classifier, tagger, span_qa and embeddings exports)")
    # Weights stored under a mixed policy are float32 variables: loaded as float32, then converted if asked.
    with dtype_policy("float32"):
        loaded = load_folder(folder, fmt, saved, checkpoint, dtype="float32")
    log(f"restored: {loaded.weights}")
    model, trained = loaded.model, saved_policy(loaded.config)  # config.json as saved (a published one: float32)
    if precision == "bfloat16":
        model = cast_weights(model, "bfloat16", spec=loaded.config)
    if loaded.config.get("peft"):
        merge_lora(model)  # Export plain kernels, no LoRA ops.
    if precision == "int8":
        quantize_int8(model)
    log(f"serving precision: {precision} ({DESCRIPTIONS[precision]}"
        + (f"; trained under the {trained} policy)" if trained != "float32" else ")"))
    common = dict(export_dir=export_dir, model_name=model_name or head, version=version, warmup=warmup)
    if head == "gpt":
        return export_gpt(model, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
                          precision=precision, **common)
    if head == "translator":
        run = loaded.serving  # the recipe's settings; tools/export.py's flags override them
        return export_translator(model, loaded.tokenizer, num_beams=num_beams or run.get("num_beams", 4),
                                 length_penalty=run.get("length_penalty", 0.6) if length_penalty is None
                                 else length_penalty,
                                 max_source_length=max_source_length or run.get("max_source_length"), **common)
    preprocessor = loaded.preprocessor(max_seq_length)
    if head == "embeddings":
        return export_embeddings(preprocessor, getattr(model, "backbone", model), **common)
    if head == "classifier":
        return export_classifier(preprocessor, model, label_names=label_names or loaded.labels,
                                 token_ids_signatures=token_ids_signatures,
                                 task=loaded.serving.get("task", "classification"),
                                 text_pair=loaded.serving.get("text_pair", False), **common)
    if head == "tagger":
        return export_tagger(preprocessor, model, loaded.labels, split_punctuation=split_punctuation, **common)
    return export_span_qa(preprocessor, model, **common,
                          max_query_length=max_query_length or loaded.serving.get("max_query_length", 64),
                          max_answer_length=max_answer_length or loaded.serving.get("max_answer_length", 30))
