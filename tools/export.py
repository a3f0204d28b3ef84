"""Export a trained model as a TF Serving SavedModel: raw strings in, named outputs out.

    python tools/export.py runs/sst2 runs/serving                    # a recipe's --model_dir
    python tools/export.py runs/sst2 runs/serving --head=embeddings --model_name=sst2_vectors
    python tools/export.py all-MiniLM-L6-v2/ runs/serving --model_name=minilm --max_seq_length=256

The first argument is a model folder: a recipe's --model_dir (classify.py,
tag.py, qa.py, pretrain_bert.py, train_gpt.py, translate.py) or a
`save_pretrained` folder, whose config.json names the model class, or a
published Hugging Face / Google BERT folder (exported as sentence
embeddings, or `--head=classifier` when it holds a classifier). The export
follows from the saved class (`tfllm.export.EXPORTS`); `--head` chooses only
where there is more than one (any BERT encoder can also serve embeddings).
A classifier run's config.json `serving` entry says whether it takes text
pairs (`text_pair`: inputs `text` and `text_pair`) and whether it is a
regressor (`task`: `regression` serves a `score`).
The weights are the run's final ones (model.weights.h5), else its latest
checkpoint, unless --checkpoint names one (a prefix such as
<model_dir>/checkpoints/ckpt-500). Writes <export_dir>/<model_name>/<version>/
with assets.extra/tf_serving_warmup_requests; signatures: docs/serving.md.
"""

import os

from absl import flags

import tfllm  # noqa: F401  (sets the Keras backend and CPU kernels before TensorFlow loads)
from tfllm import export
from tfllm.cli import run
from tfllm.models import Bert
from tfllm.models import BertClassifier
from tfllm.models import LoadedModel
from tfllm.models import load
from tfllm.models.pretrained import detect_format
from tfllm.models.pretrained import read_config
from tfllm.peft import merge_lora
from tfllm.tokenizers import load_tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_enum("head", None, list(export.HEADS), "What the SavedModel serves, where the saved model can be "
                  "exported more than one way (default: the first of tfllm.export.EXPORTS for its class).")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix or folder; default: <model_dir>/model.weights.h5, "
                    "else the latest in <model_dir>/checkpoints.")
flags.DEFINE_string("model_name", None, "Model name in the export path (and TF Serving's MODEL_NAME). Default: --head.")
flags.DEFINE_integer("version", 1, "Version directory (a positive integer; TF Serving serves the highest).",
                     lower_bound=1)
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests (needs tfllm[serving]).")
flags.DEFINE_integer("max_seq_length", None, "BERT heads: tokens per text (default: the run's, else 128).",
                     lower_bound=8)
flags.DEFINE_list("label_names", None, "classifier: class names in id order (default: the run's, else the ids).")
flags.DEFINE_bool("token_ids_signatures", False, "classifier: add `tokenize` and `classify_token_ids` "
                  "signatures (client-side tokenization; tools/serve_bench.py uses them).")
flags.DEFINE_enum("quantize", "none", ["none", "int8"], "BERT heads: Keras post-training int8 quantization of "
                  "the Dense/EinsumDense weights (model.quantize) before export; see docs/serving.md for what it buys.")
flags.DEFINE_bool("split_punctuation", True, "tagger: split words at punctuation as well as whitespace.")
flags.DEFINE_integer("max_query_length", None, "span_qa: question tokens kept (default: the run's).")
flags.DEFINE_integer("max_answer_length", None, "span_qa: most tokens in an answer (default: the run's).")
flags.DEFINE_integer("max_new_tokens", 128, "gpt: most tokens generated (also the `generate` signature's cap).")
flags.DEFINE_float("temperature", 0.0, "gpt: serving_default's temperature (0 = greedy).", lower_bound=0.0)
flags.DEFINE_integer("top_k", 0, "gpt: serving_default's top-k (0 = off).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "gpt: serving_default's sampling seed.")
flags.DEFINE_integer("num_beams", 4, "translator: beam size (1 = greedy).", lower_bound=1)
flags.DEFINE_float("length_penalty", 0.6, "translator: GNMT length penalty alpha.")


def saved_class(path):
    """The class name a folder's model loads as: a tfllm folder's own, a published one's encoder or classifier."""
    if detect_format(path) == "tfllm":
        return read_config(path)["tfllm_class"]
    if FLAGS.head not in (None, "embeddings", "classifier"):
        raise flags.IllegalFlagValueError(f"--head={FLAGS.head} needs a tfllm folder (a recipe's --model_dir); "
                                          f"{path} is a published checkpoint (heads for it: embeddings, classifier)")
    return "BertClassifier" if FLAGS.head == "classifier" else "Bert"


def load_folder(path, saved):
    """The folder's model as a `LoadedModel`: a tfllm folder as saved, a published one as `saved` says."""
    if detect_format(path) == "tfllm":
        return load(path, checkpoint=FLAGS.checkpoint)
    model = (BertClassifier if saved == "BertClassifier" else Bert).from_pretrained(path)
    return LoadedModel(model, load_tokenizer(path), {}, path)


def export_loaded(loaded, head, export_dir, name):
    """Export `loaded` as `head` with the flags' options; returns the SavedModel path."""
    model = loaded.model
    common = dict(export_dir=export_dir, model_name=name, version=FLAGS.version, warmup=FLAGS.warmup)
    if head == "gpt":
        return export.export_gpt(model, max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
                                 top_k=FLAGS.top_k, seed=FLAGS.seed, **common)
    if head == "translator":
        return export.export_translator(model, loaded.tokenizer, num_beams=FLAGS.num_beams,
                                        length_penalty=FLAGS.length_penalty, **common)
    if FLAGS.quantize != "none":
        model.quantize(FLAGS.quantize)
    preprocessor = loaded.preprocessor(FLAGS.max_seq_length)
    if head == "embeddings":
        return export.export_embeddings(preprocessor, getattr(model, "backbone", model), **common)
    if head == "classifier":
        return export.export_classifier(preprocessor, model, label_names=FLAGS.label_names or loaded.labels,
                                        token_ids_signatures=FLAGS.token_ids_signatures,
                                        task=loaded.serving.get("task", "classification"),
                                        text_pair=loaded.serving.get("text_pair", False), **common)
    if head == "tagger":
        return export.export_tagger(preprocessor, model, loaded.labels, split_punctuation=FLAGS.split_punctuation,
                                    **common)
    return export.export_span_qa(
        preprocessor, model, **common,
        max_query_length=FLAGS.max_query_length or loaded.serving.get("max_query_length", 64),
        max_answer_length=FLAGS.max_answer_length or loaded.serving.get("max_answer_length", 30))


def main(argv):
    if len(argv) != 3:
        raise flags.IllegalFlagValueError("usage: tools/export.py MODEL_DIR EXPORT_DIR [--flags]")
    model_dir, export_dir = argv[1:]
    if not os.path.isdir(model_dir):
        raise flags.IllegalFlagValueError(f"{model_dir}: no such directory (the first argument is a model folder)")
    saved = saved_class(model_dir)
    heads = export.EXPORTS.get(saved, ())
    head = FLAGS.head or (heads[0] if heads else None)
    if head not in heads:
        raise flags.IllegalFlagValueError(f"--head={head} cannot be exported from {model_dir}: it holds a {saved} "
                                          f"(exports for it: {', '.join(heads) or 'none'})")
    loaded = load_folder(model_dir, saved)
    print(f"restored: {loaded.weights}", flush=True)
    if loaded.config.get("peft"):
        merge_lora(loaded.model)  # Export plain kernels, no LoRA ops.
    path = export_loaded(loaded, head, export_dir, FLAGS.model_name or head)
    print(f"exported: {path}", flush=True)


if __name__ == "__main__":
    run(main)
