"""Export a trained model as a TF Serving SavedModel: raw strings in, named outputs out.

    python tools/export.py runs/sst2 runs/serving                    # a recipe's --model_dir
    python tools/export.py runs/sst2 runs/serving --head=embeddings --model_name=sst2_vectors
    python tools/export.py all-MiniLM-L6-v2/ runs/serving --model_name=minilm --max_seq_length=256
    python tools/export.py runs/sst2 runs/serving --model_name=sst2_bf16 --serving_precision=bf16

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
The encoder heads compute in float32 unless --serving_precision says
bfloat16 or int8, whatever policy the run trained under (a
--mixed_precision=bf16 run exports in float32 by default).
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
from tfllm.export.serving_precision import SERVING_PRECISIONS
from tfllm.export.serving_precision import SPELLINGS

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
flags.register_validator("label_names", lambda names: names is None or len(set(names)) == len(names),
                         "--label_names must name each class once")
flags.DEFINE_bool("token_ids_signatures", False, "classifier: add `tokenize` and `classify_token_ids` "
                  "signatures (client-side tokenization; tools/serve_bench.py uses them).")
flags.DEFINE_enum("serving_precision", "float32", [*SERVING_PRECISIONS, *SPELLINGS], "What the export computes "
                  "in, whatever policy the run trained under: float32 (alias fp32), bfloat16 (bf16: bfloat16 weights "
                  "and matmuls, LayerNorm/softmax/outputs float32) or int8 (Keras model.quantize: int8 "
                  "Dense/EinsumDense kernels and token embeddings). gpt: float32 or bfloat16; translator: float32 "
                  "only for now. Figures: docs/serving.md.", case_sensitive=False)
flags.DEFINE_bool("split_punctuation", True, "tagger: split words at punctuation as well as whitespace.")
flags.DEFINE_integer("max_query_length", None, "span_qa: question tokens kept (default: the run's).")
flags.DEFINE_integer("max_answer_length", None, "span_qa: most tokens in an answer (default: the run's).")
flags.DEFINE_integer("max_new_tokens", 128, "gpt: most tokens generated (also the `generate` signature's cap).")
flags.DEFINE_float("temperature", 0.0, "gpt: serving_default's temperature (0 = greedy).", lower_bound=0.0)
flags.DEFINE_integer("top_k", 0, "gpt: serving_default's top-k (0 = off).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "gpt: serving_default's sampling seed.")
flags.DEFINE_integer("num_beams", None, "translator: beam size, 1 = greedy (default: the run's, else 4).",
                     lower_bound=1)
flags.DEFINE_float("length_penalty", None, "translator: GNMT length penalty alpha (default: the run's, else 0.6).")
flags.DEFINE_integer("max_source_length", None, "translator: source tokens kept (default: the run's, else the "
                     "model's position table).", lower_bound=1)


def main(argv):
    if len(argv) != 3:
        raise flags.IllegalFlagValueError("usage: tools/export.py MODEL_DIR EXPORT_DIR [--flags]")
    model_dir, export_dir = argv[1:]
    if not os.path.isdir(model_dir):
        raise flags.IllegalFlagValueError(f"{model_dir}: no such directory (the first argument is a model folder)")
    path = export.export_folder(
        model_dir, export_dir, head=FLAGS.head, model_name=FLAGS.model_name, version=FLAGS.version,
        checkpoint=FLAGS.checkpoint, warmup=FLAGS.warmup, max_seq_length=FLAGS.max_seq_length,
        label_names=FLAGS.label_names, serving_precision=FLAGS.serving_precision,
        token_ids_signatures=FLAGS.token_ids_signatures,
        split_punctuation=FLAGS.split_punctuation, max_query_length=FLAGS.max_query_length,
        max_answer_length=FLAGS.max_answer_length, max_new_tokens=FLAGS.max_new_tokens,
        temperature=FLAGS.temperature, top_k=FLAGS.top_k, seed=FLAGS.seed, num_beams=FLAGS.num_beams,
        length_penalty=FLAGS.length_penalty, max_source_length=FLAGS.max_source_length,
        log=lambda line: print(line, flush=True))
    print(f"exported: {path}", flush=True)


if __name__ == "__main__":
    run(main)
