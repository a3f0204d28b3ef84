"""What the BERT fine-tuning recipes share: the vocabulary, preprocessor and backbone their flags ask for.

Each takes the recipe's absl FLAGS (as `runtime.setup` does) and reads
`--model_dir`, `--vocab_file`, `--vocab_size`, `--lowercase`,
`--init_checkpoint`, `--max_seq_length`, `--preset` and `--dropout`.
"""

import os
import time

import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.pretrained import is_pretrained_dir
from tfllm.tokenizers import build_word_piece_vocabulary
from tfllm.tokenizers import load_vocabulary
from tfllm.tokenizers import save_vocabulary
from tfllm.training.init_checkpoint import restore_backbone
from tfllm.training.strategy import is_chief


def define_flags(vocab_source, model_name, export_outputs, lowercase=True, lowercase_help="",
                 dropout_help="Dropout in the encoder.", max_seq_length=128,
                 max_seq_length_help="Texts are truncated to this many tokens (count is logged).", epochs=3):
    """The flags every BERT fine-tuning recipe has: vocabulary, model size, initialisation, schedule, export."""
    flags.DEFINE_string("vocab_file", None, f"WordPiece vocabulary; built from {vocab_source} if missing. "
                        "Default: <model_dir>/vocab.txt.")
    flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size when building one.")
    flags.DEFINE_bool("lowercase", lowercase, "Lower-case text before WordPiece" + (f" ({lowercase_help})."
                                                                                    if lowercase_help else "."))
    flags.DEFINE_string("preset", "bert_tiny", "Model size: " + ", ".join(Bert.presets))
    flags.DEFINE_float("dropout", 0.1, dropout_help)
    flags.DEFINE_string("init_checkpoint", None, "Initialise the encoder from a tfllm model_dir or checkpoint, or a "
                        "pretrained folder (tfllm save_pretrained, Hugging Face or Google BERT), whose vocabulary, "
                        "casing and size are then used.")
    flags.DEFINE_integer("max_seq_length", max_seq_length, max_seq_length_help)
    flags.DEFINE_float("epochs", epochs, "Training epochs (may be fractional).")
    flags.DEFINE_float("warmup_ratio", 0.1, "Fraction of steps with linear learning-rate warmup.")
    flags.DEFINE_string("export_dir", None, f"Where to write the SavedModel ({export_outputs}; skipped if unset).")
    flags.DEFINE_string("model_name", model_name, "Model name in the export path.")
    flags.DEFINE_integer("version", 1, "Model version in the export path.")


def vocabulary(FLAGS, train_texts, strategy):
    """Load --vocab_file, or build one from the training texts and save it (chief only)."""
    path = FLAGS.vocab_file or os.path.join(FLAGS.model_dir, "vocab.txt")
    if tf.io.gfile.exists(path):
        return load_vocabulary(path)
    logging.info("Building a %d-token WordPiece vocabulary from %d texts ...", FLAGS.vocab_size, len(train_texts))
    start = time.time()
    vocab = build_word_piece_vocabulary(train_texts, FLAGS.vocab_size, lowercase=FLAGS.lowercase)
    if is_chief(strategy):
        save_vocabulary(vocab, path)
    logging.info("Vocabulary of %d tokens in %.0f s -> %s", len(vocab), time.time() - start, path)
    return vocab


def bert_preprocessor(FLAGS, train_texts, strategy):
    """Returns `(BertPreprocessor, pretrained folder or None)`.

    From --init_checkpoint when it is a pretrained folder (its vocabulary and
    casing), else from `vocabulary(...)` and --lowercase.
    """
    pretrained = FLAGS.init_checkpoint if FLAGS.init_checkpoint and is_pretrained_dir(FLAGS.init_checkpoint) else None
    if pretrained:
        logging.info("Vocabulary, casing and model size from %s (--vocab_file/--lowercase/--preset unused)", pretrained)
        return BertPreprocessor.from_pretrained(pretrained, sequence_length=FLAGS.max_seq_length), pretrained
    return BertPreprocessor(
        vocabulary(FLAGS, train_texts, strategy), sequence_length=FLAGS.max_seq_length, lowercase=FLAGS.lowercase
    ), None


def bert_backbone(FLAGS, preprocessor, pretrained):
    """The `Bert` encoder: the pretrained folder's, or --preset restored from --init_checkpoint if set.

    Call inside `strategy.scope()`.
    """
    if pretrained:
        return Bert.from_pretrained(pretrained, dropout=FLAGS.dropout)
    bert = Bert.from_preset(
        FLAGS.preset, vocabulary_size=preprocessor.tokenizer.vocabulary_size(), dropout=FLAGS.dropout,
        max_sequence_length=max(512, FLAGS.max_seq_length),
    )
    if FLAGS.init_checkpoint:
        restore_backbone(bert, FLAGS.init_checkpoint)
    return bert
