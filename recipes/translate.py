"""Train, evaluate (corpus BLEU) or run an encoder-decoder Transformer translator on parallel text.

Multi30k English -> German with `transformer_small`:

    python recipes/translate.py --mode=train \
        --train_source=../shared/data/multi30k/train.en --train_target=../shared/data/multi30k/train.de \
        --eval_source=../shared/data/multi30k/val.en --eval_target=../shared/data/multi30k/val.de \
        --model_dir=runs/multi30k --preset=transformer_small --max_steps=4000
    python recipes/translate.py --mode=evaluate --model_dir=runs/multi30k --eval_source=... --eval_target=...
    echo "A man is riding a bike." | python recipes/translate.py --mode=translate --model_dir=runs/multi30k

`train` builds a shared SentencePiece vocabulary if missing, trains (re-running
resumes from the latest checkpoint), then evaluates: corpus BLEU (sacreBLEU,
detokenized output against the raw references) with beam search, written to
<model_dir>/eval_results.json with the translations beside it.
"""

import json
import os
import sys
import time

import common
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm.data import parallel_text
from tfllm.errors import ConfigError
from tfllm.models import Seq2SeqTransformer
from tfllm.models import load
from tfllm.models.seq2seq.translation import translate_texts
from tfllm.tokenizers import sentence_piece
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import is_chief
from tfllm.training import seq2seq_losses
from tfllm.training import wait_for_all_workers

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "train", ["train", "evaluate", "translate"], "train (then evaluate), evaluate the "
                  "latest checkpoint, or translate --input_file / stdin line by line.")
flags.DEFINE_string("train_source", None, "Training source sentences, one a line.")
flags.DEFINE_string("train_target", None, "Training target sentences, line-aligned with --train_source.")
flags.DEFINE_string("eval_source", None, "Evaluation source sentences.")
flags.DEFINE_string("eval_target", None, "Evaluation references, line-aligned with --eval_source.")
flags.DEFINE_string("spm_model", None, "Shared SentencePiece model; trained on both sides of the training "
                    "data if missing. Default: <model_dir>/spm.model.")
flags.DEFINE_integer("vocab_size", 8000, "Shared vocabulary size when training one.")
flags.DEFINE_enum("preset", "transformer_small", list(Seq2SeqTransformer.presets), "Model size.")
flags.DEFINE_float("dropout", 0.1, "Dropout (residual, attention, embeddings).")
flags.DEFINE_enum("position_embedding", "learned", ["learned", "sinusoidal"], "Position embeddings.")
flags.DEFINE_bool("share_embeddings", True, "One embedding for source and target (shared vocabulary).")
flags.DEFINE_bool("tie_output_embeddings", True, "Output projection = target embedding.")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing of the training loss.")
flags.DEFINE_integer("max_source_length", 100, "Training pairs with longer sources are dropped (count logged); "
                     "longer evaluation sources are cut.")
flags.DEFINE_integer("max_target_length", 100, "Training pairs with longer targets (+ BOS/EOS) are dropped.")
flags.DEFINE_integer("max_steps", 0, "Optimizer updates (0: --epochs).")
flags.DEFINE_float("epochs", 10, "Training epochs when --max_steps is 0.")
flags.DEFINE_integer("warmup_steps", 500, "Linear learning-rate warmup.")
flags.DEFINE_enum("decay", "linear", ["linear", "cosine"], "Learning-rate decay after warmup.")
flags.DEFINE_float("beta_2", 0.98, "AdamW beta_2 (Vaswani et al. use 0.98).")
flags.DEFINE_integer("eval_every", 0, "Teacher-forced validation loss every N steps (0: only at the end).")
flags.DEFINE_integer("num_beams", 4, "Beam size for evaluation/translation (1 = greedy).")
flags.DEFINE_float("length_penalty", 0.6, "GNMT length penalty alpha for beam search.")
flags.DEFINE_integer("decode_batch_size", 64, "Sentences decoded at once.", lower_bound=1)
flags.DEFINE_integer("max_eval_examples", 0, "Evaluate BLEU on the first N pairs only (0: all).")
flags.DEFINE_string("input_file", None, "--mode=translate: sentences to translate (default: stdin).")
flags.DEFINE_string("output_file", None, "--mode=translate: where to write translations (default: stdout).")
flags.DEFINE_string("export_dir", None, "--mode=train: also export a SavedModel (source strings in, "
                    "translations out, beam search inside) to <export_dir>/<model_name>/<version>/.")
flags.DEFINE_string("model_name", "translator", "Model name in the export path.")
flags.DEFINE_integer("version", 1, "Export version (TF Serving).")
common.define_common_flags(batch_size=64, learning_rate=1e-3)
flags.register_multi_flags_validator(
    ["eval_source", "eval_target"], lambda f: bool(f["eval_source"]) == bool(f["eval_target"]),
    message="--eval_source and --eval_target go together (BLEU needs the references)")


def tokenizer_for_training(strategy):
    path = FLAGS.spm_model or os.path.join(FLAGS.model_dir, "spm.model")
    if not tf.io.gfile.exists(path):
        sources, targets = parallel_text.read_parallel_text(FLAGS.train_source, FLAGS.train_target)
        start = time.time()
        if is_chief(strategy):
            sentence_piece.train_sentence_piece(sources + targets, path, FLAGS.vocab_size)
        logging.info("SentencePiece vocabulary of %d from %d sentences in %.0f s -> %s",
                     FLAGS.vocab_size, 2 * len(sources), time.time() - start, path)
    return path, sentence_piece.load_sentence_piece(path)


def build_model(vocabulary_size):
    config = dict(Seq2SeqTransformer.presets[FLAGS.preset])
    config.update(vocabulary_size=vocabulary_size, dropout=FLAGS.dropout,
                  position_embedding=FLAGS.position_embedding, share_embeddings=FLAGS.share_embeddings,
                  tie_output_embeddings=FLAGS.tie_output_embeddings,
                  max_sequence_length=max(config["max_sequence_length"], FLAGS.max_source_length,
                                          FLAGS.max_target_length))
    return Seq2SeqTransformer(**config)


def evaluate_bleu(model, tokenizer, step, train_seconds=None):
    """Beam-search the eval sources, score corpus BLEU on detokenized text, write JSON + translations.

    `step`: the training step reached (None: the saved final weights of an earlier run).
    """
    import sacrebleu  # noqa: PLC0415  (the `eval` extra)

    sources, references = parallel_text.read_parallel_text(FLAGS.eval_source, FLAGS.eval_target)
    if FLAGS.max_eval_examples:
        sources, references = sources[: FLAGS.max_eval_examples], references[: FLAGS.max_eval_examples]
    start = time.time()
    hypotheses = translate_texts(
        model, tokenizer, sources, FLAGS.decode_batch_size, FLAGS.num_beams, FLAGS.length_penalty,
        FLAGS.max_source_length)
    decode_seconds = time.time() - start
    bleu = sacrebleu.metrics.BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    results = dict(bleu=score.score, bleu_details=str(score), signature=str(bleu.get_signature()),
                   examples=len(sources), eval_source=FLAGS.eval_source, eval_target=FLAGS.eval_target,
                   num_beams=FLAGS.num_beams, length_penalty=FLAGS.length_penalty, step=step,
                   decode_seconds=round(decode_seconds, 1))
    if train_seconds is not None:
        results["train_seconds_this_run"] = round(train_seconds, 1)
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_translations.txt"), "w") as f:
        f.write("".join(h + "\n" for h in hypotheses))
    print(f"eval: BLEU {score.score:.2f}  ({score})  {len(sources)} sentences of {FLAGS.eval_source}, "
          f"beam {FLAGS.num_beams}, step {step}, decoding {decode_seconds:.0f} s", flush=True)
    return results


def load_translator():
    """--model_dir's run, refused in one line unless it holds a translator."""
    run = load(FLAGS.model_dir)
    if not isinstance(run.model, Seq2SeqTransformer):
        raise ConfigError(f"--model_dir={FLAGS.model_dir} holds a {type(run.model).__name__}, not a "
                          "Seq2SeqTransformer (a translate.py run)")
    return run


def translate():
    run = load_translator()
    model, tokenizer = run.model, run.tokenizer
    logging.info("Translating with %s", run.weights)
    lines = parallel_text.read_lines(FLAGS.input_file) if FLAGS.input_file else sys.stdin.read().splitlines()
    if not lines:
        logging.warning("No sentences to translate in %s.", FLAGS.input_file or "standard input")
    outputs = translate_texts(model, tokenizer, lines, FLAGS.decode_batch_size, FLAGS.num_beams,
                                        FLAGS.length_penalty, FLAGS.max_source_length)
    text = "".join(o + "\n" for o in outputs)
    if FLAGS.output_file:
        with tf.io.gfile.GFile(FLAGS.output_file, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main(_):
    strategy = common.setup()
    if FLAGS.mode == "translate":
        return translate()
    if FLAGS.mode == "evaluate":
        if not (FLAGS.eval_source and FLAGS.eval_target):
            raise flags.IllegalFlagValueError("--mode=evaluate needs --eval_source and --eval_target")
        run = load_translator()
        logging.info("Evaluating %s", run.weights)
        return evaluate_bleu(run.model, run.tokenizer, step=None)

    for flag in ("train_source", "train_target"):
        if not FLAGS[flag].value:
            raise flags.IllegalFlagValueError(f"--mode=train needs --{flag}")
    spm_path, tokenizer = tokenizer_for_training(strategy)
    sources, targets = parallel_text.read_parallel_text(FLAGS.train_source, FLAGS.train_target)
    source_ids, target_ids, _ = parallel_text.filter_by_length(
        parallel_text.tokenize(tokenizer, sources), parallel_text.tokenize(tokenizer, targets),
        FLAGS.max_source_length, FLAGS.max_target_length, name=f"{FLAGS.train_source} (train)")
    steps = FLAGS.max_steps or common.epoch_steps(len(source_ids), "training pairs")
    logging.info("%d training pairs, %d steps of %d (%.1f epochs)", len(source_ids), steps, FLAGS.batch_size,
                 steps * FLAGS.batch_size / max(len(source_ids), 1))

    with strategy.scope():
        model = build_model(tokenizer.vocabulary_size())
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=steps, warmup_steps=FLAGS.warmup_steps,
            decay=FLAGS.decay, beta_2=FLAGS.beta_2, **common.optimizer_options())
    logging.info("Seq2SeqTransformer %s with %s parameters", FLAGS.preset, f"{model.count_params():,}")
    common.save_run_config(model, strategy, tokenizer, tokenizer_file=spm_path,
                           serving=dict(num_beams=FLAGS.num_beams, length_penalty=FLAGS.length_penalty,
                                        max_source_length=FLAGS.max_source_length))
    trainer = Trainer(
        model, optimizer, seq2seq_losses.translation_loss(FLAGS.label_smoothing), FLAGS.batch_size,
        FLAGS.model_dir, strategy,
        metric_fns={"cross_entropy": seq2seq_losses.token_cross_entropy,
                    "accuracy": seq2seq_losses.token_accuracy},
        **common.trainer_options(),
    )
    bos, eos = sentence_piece.BOS_ID, sentence_piece.EOS_ID

    def train_data(ctx):
        return parallel_text.translation_dataset(
            source_ids, target_ids, ctx.get_per_replica_batch_size(FLAGS.batch_size), training=True,
            bos_id=bos, eos_id=eos, seed=FLAGS.seed, input_context=ctx)

    eval_data = None
    if FLAGS.eval_source and FLAGS.eval_target:
        eval_sources, eval_targets = parallel_text.read_parallel_text(FLAGS.eval_source, FLAGS.eval_target)
        eval_source_ids, eval_target_ids, _ = parallel_text.filter_by_length(
            parallel_text.tokenize(tokenizer, eval_sources), parallel_text.tokenize(tokenizer, eval_targets),
            FLAGS.max_source_length, FLAGS.max_target_length, name=f"{FLAGS.eval_source} (eval)")

        def eval_data(ctx):
            return parallel_text.translation_dataset(
                eval_source_ids, eval_target_ids, ctx.get_per_replica_batch_size(FLAGS.batch_size),
                training=False, bos_id=bos, eos_id=eos, input_context=ctx)

    start = time.time()
    results = trainer.train(train_data, steps, eval_dataset_fn=eval_data, eval_every=FLAGS.eval_every or None)
    train_seconds = time.time() - start
    logging.info("Training took %.0f s", train_seconds)
    common.save_run_weights(model, strategy)
    if eval_data and is_chief(strategy):
        evaluate_bleu(model, tokenizer, results["steps"], train_seconds)
    common.export_run(strategy)
    wait_for_all_workers(strategy)


if __name__ == "__main__":
    common.run(main)
