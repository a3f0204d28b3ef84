"""Export a trained model as a TF Serving SavedModel: raw strings in, named outputs out.

    python tools/export.py --model_dir=runs/sst2 --head=classifier --export_dir=runs/serving --model_name=sst2
    python tools/export.py --model_dir=runs/conll --head=tagger --export_dir=runs/serving --model_name=ner
    python tools/export.py --model_dir=runs/squad --head=span_qa --export_dir=runs/serving --model_name=qa
    python tools/export.py --model_dir=runs/sst2 --head=embeddings --export_dir=runs/serving --model_name=sst2_vectors
    python tools/export.py --model_dir=runs/shakespeare_char --head=gpt --export_dir=runs/serving --model_name=gpt
    python tools/export.py --model_dir=runs/multi30k --head=translator --export_dir=runs/serving --model_name=en_de
    python tools/export.py --model_dir=all-MiniLM-L6-v2/ --head=embeddings --export_dir=runs/serving --model_name=minilm

--model_dir is the run's --model_dir (recipes/classify.py, tag.py, qa.py
write bert_run.json there; train_gpt.py writes gpt_config.json), or a
pretrained folder (tfllm save_pretrained, Hugging Face, Google BERT) for
--head=embeddings or a stored classifier head. The latest checkpoint is used
unless --checkpoint names one (a prefix such as <model_dir>/checkpoints/ckpt-500).
Writes <export_dir>/<model_name>/<version>/ with
assets.extra/tf_serving_warmup_requests; signatures: docs/serving.md.
"""

import os
import sys

from absl import app
from absl import flags

import tfllm  # noqa: F401  (sets the Keras backend)

from tfllm import export
from tfllm.models.bert import bert_run_files
from tfllm.models.gpt import gpt_run_files

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's --model_dir, or a pretrained folder "
                    "(embeddings/classifier).")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix or folder; default: the latest in "
                    "<model_dir>/checkpoints.")
flags.DEFINE_enum("head", None, list(export.HEADS), "What the SavedModel serves.")
flags.DEFINE_string("export_dir", None, "TF Serving base directory; the export goes to "
                    "<export_dir>/<model_name>/<version>/.")
flags.DEFINE_string("model_name", None, "Model name in the export path (and TF Serving's MODEL_NAME). Default: --head.")
flags.DEFINE_integer("version", 1, "Version directory (a positive integer; TF Serving serves the highest).")
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests (needs tfllm[serving]).")
flags.DEFINE_integer("max_seq_length", None, "Tokens per text (default: the run's). Required for a pretrained folder.")
flags.DEFINE_list("label_names", None, "classifier: class names in id order (default: the run's, else the ids).")
flags.DEFINE_bool("token_ids_signatures", False, "classifier: add `tokenize` and `classify_token_ids` "
                  "signatures (client-side tokenization; tools/serve_bench.py uses them).")
flags.DEFINE_enum("quantize", "none", ["none", "int8"], "BERT heads: Keras post-training int8 quantization of "
                  "the Dense/EinsumDense weights (model.quantize) before export; see docs/serving.md for what it buys.")
flags.DEFINE_bool("split_punctuation", True, "tagger: split words at punctuation as well as whitespace.")
flags.DEFINE_integer("max_query_length", None, "span_qa: question tokens kept (default: the run's).")
flags.DEFINE_integer("max_answer_length", None, "span_qa: most tokens in an answer (default: the run's).")
flags.DEFINE_integer("max_new_tokens", 128, "gpt: most tokens generated (also the `generate` signature's cap).")
flags.DEFINE_float("temperature", 0.0, "gpt: serving_default's temperature (0 = greedy).")
flags.DEFINE_integer("top_k", 0, "gpt: serving_default's top-k (0 = off).")
flags.DEFINE_integer("seed", 0, "gpt: serving_default's sampling seed.")
flags.DEFINE_integer("num_beams", 4, "translator: beam size (1 = greedy).")
flags.DEFINE_float("length_penalty", 0.6, "translator: GNMT length penalty alpha.")
flags.mark_flags_as_required(["model_dir", "head", "export_dir"])

# Which run tasks each BERT head can be exported from.
COMPATIBLE = {"classifier": ("classifier",), "tagger": ("tagger",), "span_qa": ("span_qa",),
              "embeddings": bert_run_files.TASKS}


def fail(message):
    raise app.UsageError(message)


def load_bert_run():
    """(model, preprocessor, spec) of a recipe run, checking the head fits the run's task."""
    spec = bert_run_files.read_run_config(FLAGS.model_dir)
    if spec["task"] not in COMPATIBLE[FLAGS.head]:
        fail(f"--head={FLAGS.head} cannot be exported from {FLAGS.model_dir}: it is a {spec['task']} run "
             f"(heads for it: {', '.join(h for h, tasks in COMPATIBLE.items() if spec['task'] in tasks)})")
    if FLAGS.max_seq_length:
        spec["preprocessor"]["sequence_length"] = FLAGS.max_seq_length
    model, preprocessor, spec, checkpoint = bert_run_files.load_run(FLAGS.model_dir, FLAGS.checkpoint, spec)
    print(f"restored: {checkpoint}", flush=True)
    return model, preprocessor, spec


def load_pretrained():
    """(model, preprocessor, spec) from a pretrained folder: embeddings, or a classifier with its stored head."""
    from tfllm.models import Bert, BertClassifier  # noqa: PLC0415
    from tfllm.models.bert.bert_preprocessor import BertPreprocessor  # noqa: PLC0415

    if FLAGS.head not in ("embeddings", "classifier"):
        fail(f"--head={FLAGS.head} needs a training run's --model_dir (with {bert_run_files.CONFIG_FILE}); "
             f"{FLAGS.model_dir} is a pretrained folder")
    if not FLAGS.max_seq_length:
        fail("--max_seq_length is required when --model_dir is a pretrained folder")
    preprocessor = BertPreprocessor.from_pretrained(FLAGS.model_dir, sequence_length=FLAGS.max_seq_length)
    if FLAGS.head == "embeddings":
        model = Bert.from_pretrained(FLAGS.model_dir)
    else:
        model = BertClassifier.from_pretrained(FLAGS.model_dir)
    return model, preprocessor, {"labels": None, "serving": {}}


def main(_):
    try:
        run_export()
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"tools/export.py: {e}")


def run_export():
    if not os.path.isdir(FLAGS.model_dir):
        fail(f"--model_dir={FLAGS.model_dir}: no such directory")
    name = FLAGS.model_name or FLAGS.head
    if FLAGS.head == "gpt":
        if not os.path.exists(os.path.join(FLAGS.model_dir, gpt_run_files.CONFIG_FILE)):
            fail(f"--head=gpt needs a recipes/train_gpt.py --model_dir ({gpt_run_files.CONFIG_FILE} not found "
                 f"in {FLAGS.model_dir})")
        lm, checkpoint = gpt_run_files.load_run(FLAGS.model_dir)
        if FLAGS.checkpoint:
            import tensorflow as tf  # noqa: PLC0415

            checkpoint = bert_run_files.find_checkpoint(FLAGS.model_dir, FLAGS.checkpoint)
            tf.train.Checkpoint(model=lm).read(checkpoint).expect_partial()
        print(f"restored: {checkpoint}", flush=True)
        path = export.export_gpt(lm, FLAGS.export_dir, name, FLAGS.version, warmup=FLAGS.warmup,
                                 max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
                                 top_k=FLAGS.top_k, seed=FLAGS.seed)
        print(f"exported: {path}", flush=True)
        return

    if FLAGS.head == "translator":
        from tfllm.models.seq2seq import seq2seq_run_files  # noqa: PLC0415

        if not os.path.exists(os.path.join(FLAGS.model_dir, seq2seq_run_files.CONFIG_FILE)):
            fail(f"--head=translator needs a recipes/translate.py --model_dir ({seq2seq_run_files.CONFIG_FILE} "
                 f"not found in {FLAGS.model_dir})")
        checkpoint = bert_run_files.find_checkpoint(FLAGS.model_dir, FLAGS.checkpoint)
        model, tokenizer, checkpoint = seq2seq_run_files.load_run(FLAGS.model_dir, checkpoint)
        print(f"restored: {checkpoint}", flush=True)
        path = export.export_translator(model, tokenizer, FLAGS.export_dir, name, FLAGS.version,
                                        num_beams=FLAGS.num_beams, length_penalty=FLAGS.length_penalty,
                                        warmup=FLAGS.warmup)
        print(f"exported: {path}", flush=True)
        return

    from tfllm.models.pretrained import is_pretrained_dir  # noqa: PLC0415

    has_run = os.path.exists(os.path.join(FLAGS.model_dir, bert_run_files.CONFIG_FILE))
    if not has_run and is_pretrained_dir(FLAGS.model_dir):
        model, preprocessor, spec = load_pretrained()
    else:
        model, preprocessor, spec = load_bert_run()
    if FLAGS.quantize != "none":
        model.quantize(FLAGS.quantize)
    common = dict(export_dir=FLAGS.export_dir, model_name=name, version=FLAGS.version, warmup=FLAGS.warmup)
    if FLAGS.head == "classifier":
        path = export.export_classifier(preprocessor, model, label_names=FLAGS.label_names or spec["labels"],
                                        token_ids_signatures=FLAGS.token_ids_signatures, **common)
    elif FLAGS.head == "embeddings":
        backbone = getattr(model, "backbone", model)
        path = export.export_embeddings(preprocessor, backbone, **common)
    elif FLAGS.head == "tagger":
        path = export.export_tagger(preprocessor, model, spec["labels"], split_punctuation=FLAGS.split_punctuation,
                                    **common)
    else:
        serving = spec["serving"]
        path = export.export_span_qa(
            preprocessor, model, **common,
            max_query_length=FLAGS.max_query_length or serving.get("max_query_length", 64),
            max_answer_length=FLAGS.max_answer_length or serving.get("max_answer_length", 30))
    print(f"exported: {path}", flush=True)


if __name__ == "__main__":
    app.run(main)
