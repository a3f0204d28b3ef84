"""Prompt-based zero/few-shot classification with a pretrained masked LM or causal LM.

Zero-shot cloze with a masked LM (a folder from pretrain_bert.py, or a
Hugging Face / Google BERT with its MLM head):

    python recipes/prompt_classify.py --pretrained=runs/pretrain/pretrained \
        --train_file=../shared/data/sst2/train.tsv --eval_file=../shared/data/sst2/dev.tsv \
        --template="{sentence} It was [MASK]." --verbalizer=terrible,great --shots=0 --model_dir=runs/prompt0

16 examples per class: `--shots=16` fine-tunes the MLM on the cloze question
(PET-style, `--method=prompt`) or, for comparison, a new classifier head on
the same 32 examples (`--method=finetune`). With `--model=gpt` and a causal
LM folder, `--shots=k` puts k demonstrations per class in the prompt
(in-context learning, no training). Results go to
<model_dir>/prompt_results.json and one line on stdout.
"""

import json
import os
import time

import common
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from tfllm import prompting
from tfllm.data import read_labeled_text
from tfllm.models import BertClassifier
from tfllm.models import BertPreprocessor
from tfllm.models import BertPretrainer
from tfllm.models import GptCausalLM
from tfllm.tokenizers import load_tokenizer
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import losses

FLAGS = flags.FLAGS
flags.DEFINE_string("pretrained", None, "Pretrained folder (tfllm save_pretrained, Hugging Face or Google): a "
                    "BERT with its masked-LM head (--model=mlm) or a GPT (--model=gpt).")
flags.DEFINE_enum("model", "mlm", ["mlm", "gpt"], "mlm: cloze questions; gpt: in-context prompts.")
flags.DEFINE_string("train_file", None, "Labelled TSV/CSV the --shots examples are drawn from.")
flags.DEFINE_string("eval_file", None, "Labelled TSV/CSV to report accuracy on.")
flags.DEFINE_string("text_column", "sentence", "Column holding the text.")
flags.DEFINE_string("label_column", "label", "Column holding integer labels 0..C-1 (C = verbalizer words).")
flags.DEFINE_string("template", "{sentence} It was [MASK].", "One {sentence} and one [MASK] (the label slot).")
flags.DEFINE_string("verbalizer", "terrible,great", "Label word per class id, 'w0,w1' or '0:w0,1:w1'.")
flags.DEFINE_integer("shots", 0, "Training examples per class (0: zero-shot).", lower_bound=0)
flags.DEFINE_enum("method", "prompt", ["prompt", "finetune"], "--model=mlm --shots>0: train the cloze question "
                  "(PET-style) or a new classifier head on [CLS] (standard fine-tuning) on the same examples.")
flags.DEFINE_bool("calibrate", False, "Contextual calibration (Zhao et al., 2021): divide class probabilities by "
                  "those of content-free inputs (N/A, empty, [MASK]) in the same prompt. Not with --method=finetune.")
flags.DEFINE_integer("train_steps", 100, "Optimizer updates for --shots>0 with --model=mlm.")
flags.DEFINE_integer("sequence_length", 128, "Tokens per input (template included).")
flags.DEFINE_integer("max_eval_examples", 0, "Evaluate on the first N rows only (0: all).")
common.define_common_flags(batch_size=8, learning_rate=1e-4)
flags.mark_flags_as_required(["pretrained", "eval_file"])


def check_flags():
    if FLAGS.shots and not FLAGS.train_file:
        raise flags.IllegalFlagValueError(f"--shots={FLAGS.shots} needs --train_file to draw the examples from")
    if FLAGS.model == "gpt" and FLAGS.method == "finetune":
        raise flags.IllegalFlagValueError("--method=finetune needs --model=mlm (a BERT encoder)")
    if FLAGS.method == "finetune" and FLAGS.calibrate:
        raise flags.IllegalFlagValueError("--calibrate applies to prompts (--method=prompt or --model=gpt)")
    if FLAGS.method == "finetune" and not FLAGS.shots:
        raise flags.IllegalFlagValueError("--method=finetune needs --shots > 0")
    try:
        return prompting.PromptTemplate(FLAGS.template), prompting.Verbalizer(FLAGS.verbalizer)
    except ValueError as e:
        raise flags.IllegalFlagValueError(f"--template/--verbalizer: {e}") from None


def read_examples(verbalizer):
    read = dict(text_column=FLAGS.text_column, label_column=FLAGS.label_column, num_classes=len(verbalizer))
    eval_texts, eval_labels = read_labeled_text(FLAGS.eval_file, **read)
    if FLAGS.max_eval_examples:
        eval_texts, eval_labels = eval_texts[: FLAGS.max_eval_examples], eval_labels[: FLAGS.max_eval_examples]
    shots = ([], np.zeros(0, "int32"))
    if FLAGS.shots:
        texts, labels = read_labeled_text(FLAGS.train_file, **read)
        picked = prompting.sample_per_class(labels, FLAGS.shots, len(verbalizer), FLAGS.seed)
        shots = ([texts[i] for i in picked], labels[picked])
        logging.info("%d-shot: %d examples from %s (seed %d)", FLAGS.shots, len(picked), FLAGS.train_file,
                     FLAGS.seed)
    return shots, (eval_texts, eval_labels)


def train(model, loss_fn, features, labels, strategy):
    """A few hundred updates over the k-shot set with the shared Trainer (checkpoints, logs, seed)."""
    with strategy.scope():
        optimizer = create_optimizer(FLAGS.learning_rate, total_steps=FLAGS.train_steps,
                                     warmup_steps=max(FLAGS.train_steps // 10, 1),
                                     **common.optimizer_options())

    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices((features, labels)).repeat()
        ds = ds.shuffle(len(labels), seed=FLAGS.seed)
        return ds.batch(ctx.get_per_replica_batch_size(FLAGS.batch_size), drop_remainder=True)

    trainer = Trainer(model, optimizer, loss_fn, FLAGS.batch_size, FLAGS.model_dir, strategy,
                      metric_fns={"accuracy": losses.classification_accuracy}, **common.trainer_options())
    trainer.train(dataset_fn, FLAGS.train_steps)


def predict_logits(model, features):
    return model.predict(features, batch_size=64, verbose=0)


def run_mlm(template, verbalizer, shots, evaluation, strategy):
    tokenizer = load_tokenizer(FLAGS.pretrained)
    with strategy.scope():
        if FLAGS.method == "finetune":
            model = BertClassifier.from_pretrained(FLAGS.pretrained, num_classes=len(verbalizer))
        else:
            model = prompting.cloze_classifier(BertPretrainer.from_pretrained(FLAGS.pretrained, new_head=False),
                                               verbalizer.single_token_ids(tokenizer))
    if FLAGS.method == "finetune":
        preprocessor = BertPreprocessor.from_pretrained(FLAGS.pretrained, sequence_length=FLAGS.sequence_length)

        def encode(texts):
            return {k: v.numpy() for k, v in preprocessor(tf.constant(texts)).items()}
    else:
        def encode(texts):
            return prompting.encode_cloze(tokenizer, template, texts, FLAGS.sequence_length)[0]
    if FLAGS.shots:
        train(model, losses.classification_loss, encode(shots[0]), shots[1], strategy)
    scores = predict_logits(model, encode(evaluation[0]))
    if FLAGS.calibrate:
        scores = prompting.calibrate(scores, predict_logits(model, encode(list(prompting.CONTENT_FREE_INPUTS))))
    return scores


def run_gpt(template, verbalizer, shots, evaluation):
    tokenizer = load_tokenizer(FLAGS.pretrained)
    model = GptCausalLM.from_pretrained(FLAGS.pretrained, tokenizer=tokenizer)
    order = np.random.default_rng(FLAGS.seed).permutation(len(shots[1]))  # classes interleaved, not in blocks
    demonstrations = [(shots[0][i], int(shots[1][i])) for i in order]
    prefixes = prompting.in_context_prefixes(template, verbalizer, demonstrations, evaluation[0])
    scores = prompting.label_log_likelihoods(model, tokenizer, template, verbalizer, prefixes)
    if FLAGS.calibrate:
        content_free = prompting.in_context_prefixes(template, verbalizer, demonstrations,
                                                     list(prompting.CONTENT_FREE_INPUTS))
        scores = prompting.calibrate(scores, prompting.label_log_likelihoods(
            model, tokenizer, template, verbalizer, content_free))
    return scores


def main(_):
    strategy = common.setup()
    template, verbalizer = check_flags()
    shots, evaluation = read_examples(verbalizer)
    start = time.time()
    if FLAGS.model == "gpt":
        scores = run_gpt(template, verbalizer, shots, evaluation)
    else:
        scores = run_mlm(template, verbalizer, shots, evaluation, strategy)
    predictions = scores.argmax(axis=-1)
    accuracy = float((predictions == evaluation[1]).mean())
    method = "in_context" if FLAGS.model == "gpt" else FLAGS.method
    results = dict(accuracy=accuracy, examples=len(predictions), shots_per_class=FLAGS.shots, method=method,
                   calibrated=FLAGS.calibrate,
                   model=FLAGS.model, pretrained=FLAGS.pretrained, template=FLAGS.template,
                   verbalizer=verbalizer.words, seed=FLAGS.seed, seconds=round(time.time() - start, 1),
                   predicted_class_counts=np.bincount(predictions, minlength=len(verbalizer)).tolist())
    if FLAGS.shots and FLAGS.model == "mlm":
        results.update(train_steps=FLAGS.train_steps, learning_rate=FLAGS.learning_rate)
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "prompt_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    calibrated = " (calibrated)" if FLAGS.calibrate else ""
    print(f"{method}{calibrated} {FLAGS.shots}-shot accuracy {accuracy:.4f} on {len(predictions)} examples of "
          f"{FLAGS.eval_file} (predicted per class: {results['predicted_class_counts']})", flush=True)


if __name__ == "__main__":
    common.run(main)
