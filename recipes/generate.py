"""Sample text from a trained GPT or Llama run (any causal LM folder).

    python recipes/generate.py --model_dir=runs/shakespeare_char --prompt="ROMEO:" \
        --max_new_tokens=200 --temperature=0.8 --top_k=40 --seed=1

The model decodes in --precision (float32 unless bfloat16 is asked for),
whatever policy the run trained under, as its export would.
"""

import common
from absl import flags

from tfllm.models import cast_weights
from tfllm.models import load
from tfllm.models.causal_lm import CausalLM
from tfllm.models.weight_casting import DTYPE_ALIASES

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A recipes/train_gpt.py --model_dir (or any causal LM folder).")
flags.DEFINE_multi_string("prompt", ["\n"], "Prompt text; repeat the flag for a batch of prompts.")
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per prompt.", lower_bound=1)
flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", None, "Sample from the k most likely tokens.", lower_bound=1)
flags.DEFINE_float("top_p", None, "Sample from the smallest set with probability >= p.", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("num_beams", None, "Beam search with this many beams.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_bool("jit_compile", True, "Compile the decoding loop with XLA.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "fp32", "bf16"], "What decoding computes in, "
                  "whatever --mixed_precision trained in: float32, or bfloat16 weights and matmuls (half the bytes "
                  "each step reads; logits float32; tfllm.models.cast_weights).")
flags.mark_flags_as_required(["model_dir"])


def main(_):
    run = load(FLAGS.model_dir, dtype="float32")  # a mixed-precision run's variables are float32 too
    if not isinstance(run.model, CausalLM):
        raise flags.IllegalFlagValueError(f"--model_dir={FLAGS.model_dir} holds a {type(run.model).__name__}, "
                                          "not a causal LM (GptCausalLM, LlamaCausalLM)")
    precision = DTYPE_ALIASES.get(FLAGS.precision, FLAGS.precision)
    model = run.model if precision == "float32" else cast_weights(run.model, precision, spec=run.config)
    print(f"# {run.weights} ({precision})", flush=True)
    outputs = model.generate(
        FLAGS.prompt, max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
        top_k=FLAGS.top_k, top_p=FLAGS.top_p, num_beams=FLAGS.num_beams, seed=FLAGS.seed,
        jit_compile=FLAGS.jit_compile,
    )
    for prompt, text in zip(FLAGS.prompt, outputs):
        print(prompt + text, flush=True)
        print("-" * 40, flush=True)


if __name__ == "__main__":
    common.run(main)
