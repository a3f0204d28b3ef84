"""What the recipes share: their common flags, and the steps every recipe takes with them.

absl flags live here and in the scripts, never in the `tfllm` package: the
library takes plain arguments. A recipe imports this module (it sits beside
them), defines its own flags, then in `main()`:

    strategy = common.setup()                              # seeds, precision, strategy
    ...build model inside strategy.scope()...
    common.save_run_config(model, tokenizer, labels=...)   # <model_dir>/config.json + tokenizer files
    trainer = Trainer(..., **common.trainer_options())
    trainer.train(...)
    common.save_run_weights(model, strategy)               # <model_dir>/model.weights.h5
    common.export_run(strategy)                            # --export_dir, as tools/export.py exports the run

and ends with `common.run(main)`, which prints tfllm's own errors in one line.
"""

import math
import os
import time

import tfllm  # noqa: F401  (first: sets the Keras backend and TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm import peft
from tfllm.cli import run  # noqa: F401  (re-exported: recipes end with common.run(main))
from tfllm.data import steps_per_epoch
from tfllm.errors import ConfigError
from tfllm.export import export_folder
from tfllm.export.serving_precision import SERVING_PRECISIONS
from tfllm.export.serving_precision import SPELLINGS
from tfllm.models import Bert
from tfllm.models import BertPreprocessor
from tfllm.models import save_config
from tfllm.models import save_weights
from tfllm.models.bert.preprocessors import preprocessor_for
from tfllm.models.pretrained import is_pretrained_dir
from tfllm.peft.methods import ATTENTION_PROJECTIONS
from tfllm.tokenizers import BytePairTokenizer
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers import build_word_piece_vocabulary
from tfllm.tokenizers import load_tokenizer
from tfllm.tokenizers import load_vocabulary
from tfllm.tokenizers import save_vocabulary
from tfllm.tokenizers.word_piece import CLS
from tfllm.tokenizers.word_piece import PAD
from tfllm.tokenizers.word_piece import SEP
from tfllm.tokenizers.word_piece import UNK
from tfllm.training import is_chief
from tfllm.training.init_checkpoint import restore_backbone
from tfllm.training.runtime import PRECISIONS
from tfllm.training.runtime import start_run
from tfllm.training.strategy import STRATEGIES

FLAGS = flags.FLAGS

PEFT_WEIGHTS_FILE = "peft_weights.npz"


def _finite(value):
    return value is None or math.isfinite(value)


def define_common_flags(model_dir=None, batch_size=32, learning_rate=1e-3, seed=0):
    """Flags shared by every training recipe: run location, strategy, optimizer basics, logging."""
    flags.DEFINE_string("model_dir", model_dir, "Checkpoints, TensorBoard logs, config.json, tokenizer files and "
                        "final weights go here. Re-running the same command resumes from the latest checkpoint.")
    flags.DEFINE_bool("restart", False, "Start over even though --model_dir has checkpoints (they are moved "
                      "to checkpoints/before-restart-<time>/, not deleted).")
    flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name, grpc://host:port address, or 'local' (--strategy=tpu).")
    flags.DEFINE_integer("num_cpu_devices", 1, "Split the CPU into this many logical devices "
                         "(for trying --strategy=mirrored without accelerators).", lower_bound=1)
    flags.DEFINE_integer("batch_size", batch_size, "Global batch size (over all replicas).", lower_bound=1)
    flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate (AdamW).", lower_bound=0.0)
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to biases and LayerNorm).",
                       lower_bound=0.0)
    flags.DEFINE_float("clipnorm", 1.0, "Global gradient-norm clipping.", lower_bound=0.0)
    flags.DEFINE_float("ema_momentum", None, "Also keep an exponential moving average of the weights "
                       "(e.g. 0.999) and evaluate and export with it at the end; 0 = none.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_bool("jit_compile", False, "Compile each forward + backward pass with XLA. Faster for "
                      "fixed-shape batches (GPT blocks); length-bucketed batches compile once per shape.")
    flags.DEFINE_enum("mixed_precision", "none", ["auto", *PRECISIONS], "Compute in bfloat16 or float16 "
                      "(float32 weights); fp16 adds dynamic loss scaling; auto: bf16 on CPUs with AVX512_BF16 "
                      "or AMX, else none (logged at start-up).")
    flags.DEFINE_integer("seed", seed, "Seed for initialisation, shuffling, dropout.")
    flags.DEFINE_integer("log_every", 100, "Log a progress line every N steps.", lower_bound=1)
    flags.DEFINE_integer("checkpoint_every", 1000, "Save a checkpoint every N steps.", lower_bound=1)
    flags.DEFINE_integer("steps_per_execution", 1, "Optimizer updates per host call (fewer round trips on "
                         "TPUs); logs, checkpoints and evals still land on their exact steps.", lower_bound=1)
    flags.DEFINE_float("time_budget_minutes", None, "Stop training after about this many minutes of this run "
                       "(checkpoint, evaluate and export as at the last step).", lower_bound=0.0)
    for name in ("learning_rate", "weight_decay", "clipnorm", "time_budget_minutes"):
        flags.register_validator(name, _finite, message=f"--{name} must be a finite number")
    flags.register_multi_flags_validator(
        ["num_cpu_devices", "strategy"], lambda f: f["num_cpu_devices"] == 1 or f["strategy"] == "mirrored",
        message="--num_cpu_devices > 1 takes effect only with --strategy=mirrored")


def setup():
    """Apply the common flags (seeds, precision, devices); returns the strategy. Call at the top of main()."""
    if not FLAGS.model_dir:
        raise flags.IllegalFlagValueError("--model_dir is required")
    if tf.io.gfile.exists(FLAGS.model_dir) and not tf.io.gfile.isdir(FLAGS.model_dir):
        raise ConfigError(f"--model_dir={FLAGS.model_dir} is a file; expected a folder (a new one, or a run's "
                          "to resume)")
    return start_run(FLAGS.model_dir, strategy=FLAGS.strategy, tpu=FLAGS.tpu, num_cpu_devices=FLAGS.num_cpu_devices,
                     seed=FLAGS.seed, mixed_precision=FLAGS.mixed_precision)


def optimizer_options():
    """The `create_optimizer` keyword arguments the common flags set."""
    return dict(weight_decay=FLAGS.weight_decay, clipnorm=FLAGS.clipnorm, ema_momentum=FLAGS.ema_momentum)


def trainer_options():
    """The `Trainer` keyword arguments the common flags set."""
    budget = FLAGS.time_budget_minutes * 60 if FLAGS.time_budget_minutes else None
    return dict(log_every=FLAGS.log_every, checkpoint_every=FLAGS.checkpoint_every, jit_compile=FLAGS.jit_compile,
                steps_per_execution=FLAGS.steps_per_execution, time_budget_seconds=budget, restart=FLAGS.restart)


def epoch_steps(num_examples, what):
    """Optimizer steps for --epochs passes over `num_examples` (`what`) at --batch_size; at least one."""
    per_epoch = steps_per_epoch(num_examples, FLAGS.batch_size)
    steps = int(FLAGS.epochs * per_epoch)
    if steps < 1:
        raise ConfigError(f"--epochs={FLAGS.epochs:g} of {num_examples} {what} at --batch_size={FLAGS.batch_size} "
                          f"({per_epoch} step{'s' if per_epoch > 1 else ''} an epoch) gives no training step; "
                          "raise --epochs")
    return steps


def inference_fn(model):
    """`model(x, training=False)` as one `tf.function` for evaluation loops (retraced per shape, loosely).

    autograph=False, as Keras' own predict step (`do_not_convert`): there is no
    Python control flow to convert, and AutoGraph would re-parse this
    whole file with gast to find the lambda, on every run.
    """
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True, autograph=False)


def save_run_config(model, strategy, tokenizer=None, **settings):
    """<model_dir>/config.json and the tokenizer's files (chief only): `tfllm.models.load` rebuilds the run."""
    if is_chief(strategy):
        save_config(model, FLAGS.model_dir, tokenizer, **settings)


def save_run_weights(model, strategy):
    """<model_dir>/model.weights.h5: the final weights (EMA if used), which `tfllm.models.load` prefers."""
    if is_chief(strategy):
        path = save_weights(model, FLAGS.model_dir)
        logging.info("Final weights saved to %s", path)


def export_run(strategy):
    """--export_dir: the finished run exported exactly as `tools/export.py <model_dir> <export_dir>` does (chief only).

    One export path for recipes and tools: the export is rebuilt from the
    run folder (config.json, final weights, tokenizer files), so it computes
    in --serving_precision (float32 unless asked) whatever policy the run
    trained under, LoRA updates are merged into plain kernels, and the
    head's serving options are the ones the run saved.
    """
    if not FLAGS.export_dir or not is_chief(strategy):
        return None
    options = {"serving_precision": FLAGS.serving_precision} if "serving_precision" in FLAGS else {}
    path = export_folder(FLAGS.model_dir, FLAGS.export_dir, model_name=FLAGS.model_name, version=FLAGS.version,
                         log=logging.info, **options)
    print(f"exported: {path}", flush=True)
    return path


# ---- BERT fine-tuning (classify.py, tag.py, qa.py) ------------------------------


def define_fine_tuning_flags(vocab_source, model_name, export_outputs, lowercase=True, lowercase_help="",
                             dropout_help="Dropout in the encoder.", max_seq_length=128,
                             max_seq_length_help="Texts are truncated to this many tokens (count is logged).",
                             epochs=3):
    """The flags every BERT fine-tuning recipe has: vocabulary, model size, initialisation, schedule, export."""
    flags.DEFINE_string("vocab_file", None, f"WordPiece vocabulary; built from {vocab_source} if missing. "
                        "Default: <model_dir>/vocab.txt.")
    flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size when building one.", lower_bound=10)
    flags.DEFINE_bool("lowercase", lowercase, "Lower-case text before WordPiece" + (f" ({lowercase_help})."
                                                                                    if lowercase_help else "."))
    flags.DEFINE_enum("preset", "bert_tiny", list(Bert.presets), "Model size.")
    flags.DEFINE_float("dropout", 0.1, dropout_help, lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_string("init_checkpoint", None, "Initialise the encoder from a tfllm model_dir or checkpoint, or a "
                        "pretrained folder (tfllm save_pretrained, Hugging Face BERT, RoBERTa, DistilBERT, ELECTRA, "
                        "or Google BERT), whose vocabulary, "
                        "casing and size are then used.")
    flags.DEFINE_integer("max_seq_length", max_seq_length, max_seq_length_help, lower_bound=8)
    flags.DEFINE_float("epochs", epochs, "Training epochs (may be fractional).", lower_bound=0.0)
    flags.DEFINE_float("warmup_ratio", 0.1, "Fraction of steps with linear learning-rate warmup.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_string("export_dir", None, f"Where to write the SavedModel ({export_outputs}; skipped if unset).")
    flags.DEFINE_string("model_name", model_name, "Model name in the export path.")
    flags.DEFINE_integer("version", 1, "Model version in the export path.", lower_bound=1)
    flags.DEFINE_enum("serving_precision", "float32", [*SERVING_PRECISIONS, *SPELLINGS],
                      "What the export computes in, whatever --mixed_precision trained in: float32, bfloat16 or "
                      "int8 (as tools/export.py's flag; docs/serving.md).", case_sensitive=False)
    define_peft_flags()


def vocabulary(train_texts, strategy):
    """Load --vocab_file, or build one from the training texts and save it (chief only)."""
    path = FLAGS.vocab_file or os.path.join(FLAGS.model_dir, "vocab.txt")
    if tf.io.gfile.exists(path):
        return load_vocabulary(path, required=[PAD, UNK, CLS, SEP])  # the tokenizer would see only the tokens
    logging.info("Building a %d-token WordPiece vocabulary from %d texts ...", FLAGS.vocab_size, len(train_texts))
    start = time.time()
    vocab = build_word_piece_vocabulary(train_texts, FLAGS.vocab_size, lowercase=FLAGS.lowercase)
    if is_chief(strategy):
        save_vocabulary(vocab, path)
    logging.info("Vocabulary of %d tokens in %.0f s -> %s", len(vocab), time.time() - start, path)
    return vocab


def bert_preprocessor(train_texts, strategy):
    """Returns `(BertPreprocessor, pretrained folder or None)`.

    From --init_checkpoint when it is a pretrained folder (its vocabulary and
    casing; a RoBERTa folder gives a `RobertaPreprocessor`), else from
    `vocabulary(...)` and --lowercase. A folder whose tokenizer is neither
    WordPiece nor byte-level BPE is refused in one line.
    """
    pretrained = FLAGS.init_checkpoint if FLAGS.init_checkpoint and is_pretrained_dir(FLAGS.init_checkpoint) else None
    if pretrained:
        logging.info("Vocabulary, casing and model size from %s (--vocab_file/--lowercase/--preset unused)", pretrained)
        tokenizer = load_tokenizer(pretrained)
        if not isinstance(tokenizer, (WordPieceTokenizer, BytePairTokenizer)):
            raise flags.IllegalFlagValueError(
                f"--init_checkpoint={pretrained} has a {type(tokenizer).__name__}; the BERT recipes take WordPiece "
                "(BERT, DistilBERT, ELECTRA) or byte-level BPE (RoBERTa) vocabularies")
        return preprocessor_for(tokenizer, sequence_length=FLAGS.max_seq_length), pretrained
    return BertPreprocessor(
        vocabulary(train_texts, strategy), sequence_length=FLAGS.max_seq_length, lowercase=FLAGS.lowercase
    ), None


def bert_backbone(preprocessor, pretrained):
    """The `Bert` encoder: the pretrained folder's, or --preset restored from --init_checkpoint if set.

    Call inside `strategy.scope()`.
    """
    if pretrained:
        bert = Bert.from_pretrained(pretrained, dropout=FLAGS.dropout)
        if FLAGS.max_seq_length > bert.max_tokens:
            raise flags.IllegalFlagValueError(
                f"--max_seq_length={FLAGS.max_seq_length} is longer than {pretrained}'s position table "
                f"({bert.max_tokens} positions)")
        return bert
    bert = Bert.from_preset(
        FLAGS.preset, vocabulary_size=preprocessor.tokenizer.vocabulary_size(), dropout=FLAGS.dropout,
        max_sequence_length=max(512, FLAGS.max_seq_length),
    )
    if FLAGS.init_checkpoint:
        restore_backbone(bert, FLAGS.init_checkpoint)
    return bert


# ---- Parameter-efficient fine-tuning (--peft) -----------------------------------


def define_peft_flags():
    flags.DEFINE_enum("peft", "none", list(peft.METHODS), "Parameter-efficient fine-tuning: none (train everything), "
                      "lora, adapter or prefix (backbone frozen; PEFT weights and the task head train).")
    flags.DEFINE_integer("lora_rank", 8, "--peft=lora: rank r of each update.", lower_bound=1)
    flags.DEFINE_float("lora_alpha", 16.0, "--peft=lora: updates are scaled by alpha / rank.")
    flags.DEFINE_float("lora_dropout", 0.0, "--peft=lora: dropout on the LoRA path's input.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_list("lora_targets", list(ATTENTION_PROJECTIONS), "--peft=lora: projections to adapt: query, "
                      "key, value, attention_output, intermediate, output, or groups attention, ffn, all.")
    flags.DEFINE_integer("adapter_size", 64, "--peft=adapter: bottleneck width of each adapter.", lower_bound=1)
    flags.DEFINE_integer("prefix_length", 16, "--peft=prefix: learned key/value positions per layer.", lower_bound=1)


def apply_peft(model):
    """Apply --peft to `model` (inside the strategy scope, before the optimizer) and log the parameter counts."""
    options = {
        "none": {},
        "lora": dict(rank=FLAGS.lora_rank, alpha=FLAGS.lora_alpha, dropout=FLAGS.lora_dropout,
                     targets=FLAGS.lora_targets),
        "adapter": dict(size=FLAGS.adapter_size),
        "prefix": dict(length=FLAGS.prefix_length),
    }[FLAGS.peft]
    config = peft.apply_peft(model, FLAGS.peft, **options)
    peft.log_parameter_counts(model, prefix=f"PEFT {config}: ")
    return config


def save_peft_weights(model, strategy):
    """With --peft other than none, write the PEFT weights + head to <model_dir>/peft_weights.npz (chief only)."""
    if FLAGS.peft == "none" or not is_chief(strategy):
        return None
    path = peft.save_peft_weights(model, os.path.join(FLAGS.model_dir, PEFT_WEIGHTS_FILE))
    logging.info("Saved the PEFT weights and task head to %s", path)
    return path
