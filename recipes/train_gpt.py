"""Train a GPT or Llama language model on a text file (char-level or byte-level BPE), with periodic validation.

The nanoGPT Tiny Shakespeare character setting:

    python recipes/train_gpt.py --text_file=../shared/data/tinyshakespeare/input.txt \
        --model_dir=runs/shakespeare_char --tokenizer=char --num_layers=4 --num_heads=4 \
        --hidden_dim=128 --block_size=64 --batch_size=12 --max_steps=2000 --dropout=0

`--architecture=llama` trains the Llama-style decoder instead (RMSNorm, RoPE,
SwiGLU, `--num_key_value_heads` for grouped-query attention). Re-running
resumes from the latest checkpoint; `recipes/generate.py --model_dir=...` samples from it.
"""

import time

import common
from absl import flags
from absl import logging

from tfllm.data import language_modeling as lm_data
from tfllm.models import Gpt
from tfllm.models import GptCausalLM
from tfllm.models import Llama
from tfllm.models import LlamaCausalLM
from tfllm.tokenizers import BytePairTokenizer
from tfllm.tokenizers import CharTokenizer
from tfllm.training import Trainer
from tfllm.training import create_optimizer
from tfllm.training import losses

FLAGS = flags.FLAGS
flags.DEFINE_string("text_file", None, "UTF-8 training text.")
flags.DEFINE_float("train_fraction", 0.9, "First fraction of the tokens trains; the rest validates (above 0, "
                   "below 1).")
flags.DEFINE_enum("tokenizer", "char", ["char", "bpe"], "Character-level or byte-level BPE.")
flags.DEFINE_string("bpe_vocab", None, "GPT-2 style vocab.json (for --tokenizer=bpe).")
flags.DEFINE_string("bpe_merges", None, "GPT-2 style merges.txt (for --tokenizer=bpe).")
flags.DEFINE_enum("architecture", "gpt", ["gpt", "llama"], "GPT-2 blocks, or Llama's (RMSNorm, RoPE, SwiGLU, GQA).")
flags.DEFINE_enum("preset", None, sorted({*Gpt.presets, *Llama.presets}), "A Gpt (or with --architecture=llama, "
                  "Llama) preset (gpt: " + ", ".join(Gpt.presets) + "; llama: " + ", ".join(Llama.presets) + "); "
                  "else --num_layers/--num_heads/--hidden_dim.")
flags.DEFINE_integer("num_layers", 4, "Decoder blocks.", lower_bound=1)
flags.DEFINE_integer("num_heads", 4, "Attention heads.", lower_bound=1)
flags.DEFINE_integer("hidden_dim", 128, "Model width (feed-forward: 4x for gpt, 8/3x for llama's gated MLP).",
                     lower_bound=1)
flags.DEFINE_integer("num_key_value_heads", None, "Llama: key/value heads (grouped-query attention); "
                     "default --num_heads.", lower_bound=1)
flags.DEFINE_float("dropout", 0.0, "Dropout rate.")
flags.DEFINE_integer("block_size", 64, "Context length of training blocks.", lower_bound=1)
flags.DEFINE_integer("max_steps", 2000, "Optimizer updates.")
flags.DEFINE_integer("warmup_steps", 100, "Linear warmup steps.")
flags.DEFINE_float("min_learning_rate", 1e-4, "Cosine decay ends here.")
flags.DEFINE_float("beta_2", 0.99, "AdamW beta_2 (nanoGPT uses 0.99 for small data).")
flags.DEFINE_integer("eval_every", 500, "Validate every N steps.")
flags.DEFINE_integer("eval_steps", 0, "Validation batches per eval (0 = the whole split).")
common.define_common_flags(batch_size=12, learning_rate=1e-3)
flags.mark_flags_as_required(["text_file"])
flags.register_validator("train_fraction", lambda f: 0 < f < 1, "--train_fraction must be above 0 and below 1 "
                         "(the rest of the text validates)")
flags.register_multi_flags_validator(
    ["preset", "architecture"],
    lambda f: f["preset"] is None or f["preset"] in (Llama if f["architecture"] == "llama" else Gpt).presets,
    message="--preset names a preset of the other --architecture")
flags.register_multi_flags_validator(
    ["preset", "hidden_dim", "num_heads", "num_key_value_heads"],
    lambda f: f["preset"] is not None or (f["hidden_dim"] % f["num_heads"] == 0 and (
        f["num_key_value_heads"] is None or f["num_heads"] % f["num_key_value_heads"] == 0)),
    message="--hidden_dim must divide by --num_heads, and --num_heads by --num_key_value_heads")


def make_tokenizer(text):
    if FLAGS.tokenizer == "char":
        return CharTokenizer.from_text(text)
    if not (FLAGS.bpe_vocab and FLAGS.bpe_merges):
        raise flags.IllegalFlagValueError("--tokenizer=bpe needs --bpe_vocab and --bpe_merges "
                                          "(build them with tools/build_vocab.py --type=bpe)")
    return BytePairTokenizer(FLAGS.bpe_vocab, FLAGS.bpe_merges)


def main(_):
    strategy = common.setup()
    text = lm_data.read_text(FLAGS.text_file)
    tokenizer = make_tokenizer(text)
    start = time.time()
    stream = lm_data.token_stream(text.split("\n\n") if FLAGS.tokenizer == "bpe" else [text],
                                  tokenizer.encode, separator_id=getattr(tokenizer, "end_token_id", None))
    train_stream, val_stream = lm_data.split_stream(stream, FLAGS.train_fraction, block_size=FLAGS.block_size,
                                                       name=FLAGS.text_file)
    logging.info("%s: %d tokens (vocabulary %d) in %.1f s; %d train / %d validation",
                 FLAGS.text_file, len(stream), tokenizer.vocabulary_size(), time.time() - start,
                 len(train_stream), len(val_stream))

    with strategy.scope():
        backbone_cls, lm_cls = (Llama, LlamaCausalLM) if FLAGS.architecture == "llama" else (Gpt, GptCausalLM)
        size = dict(num_layers=FLAGS.num_layers, num_heads=FLAGS.num_heads, hidden_dim=FLAGS.hidden_dim,
                    intermediate_dim=4 * FLAGS.hidden_dim)
        if FLAGS.architecture == "llama":  # the gated MLP's three matrices hold as many weights as GPT's two
            size.update(intermediate_dim=8 * FLAGS.hidden_dim // 3, num_key_value_heads=FLAGS.num_key_value_heads)
        config = dict(backbone_cls.presets[FLAGS.preset]) if FLAGS.preset else size
        config.update(vocabulary_size=tokenizer.vocabulary_size(), dropout=FLAGS.dropout,
                      max_sequence_length=max(FLAGS.block_size, config.get("max_sequence_length", 0)))
        model = lm_cls(backbone_cls(**config), tokenizer=tokenizer)
        optimizer = create_optimizer(
            FLAGS.learning_rate, total_steps=FLAGS.max_steps, warmup_steps=FLAGS.warmup_steps,
            decay="cosine", end_learning_rate=FLAGS.min_learning_rate, beta_2=FLAGS.beta_2,
            **common.optimizer_options(),
        )
    logging.info("%s with %s parameters", type(model).__name__, f"{model.count_params():,}")
    common.save_run_config(model, strategy, tokenizer)
    trainer = Trainer(
        model, optimizer, losses.token_loss, FLAGS.batch_size, FLAGS.model_dir, strategy,
        metric_fns={"accuracy": losses.token_accuracy},
        **common.trainer_options(),
    )

    def train_data(ctx):
        return lm_data.lm_dataset(train_stream, FLAGS.block_size, ctx.get_per_replica_batch_size(FLAGS.batch_size),
                                  training=True, seed=FLAGS.seed, input_context=ctx,
                                  name=f"{FLAGS.text_file} (train split)")

    def val_data(ctx):
        ds = lm_data.lm_dataset(val_stream, FLAGS.block_size, ctx.get_per_replica_batch_size(FLAGS.batch_size),
                                training=False, input_context=ctx, name=f"{FLAGS.text_file} (validation split)")
        return ds.take(FLAGS.eval_steps) if FLAGS.eval_steps else ds

    start = time.time()
    results = trainer.train(train_data, FLAGS.max_steps, eval_dataset_fn=val_data, eval_every=FLAGS.eval_every)
    results = results["eval"] or trainer.evaluate(val_data)  # a finished run only evaluates
    common.save_run_weights(model, strategy)
    print(f"validation: loss {results['loss']:.4f} (nats/token)  accuracy {results['accuracy']:.4f}  "
          f"after {FLAGS.max_steps} steps; this run trained for {time.time() - start:.0f} s", flush=True)
    sample = model.generate(text[0], max_new_tokens=200,
                            temperature=0.8, top_k=40, seed=FLAGS.seed)
    print("sample:\n" + sample, flush=True)


if __name__ == "__main__":
    common.run(main)
