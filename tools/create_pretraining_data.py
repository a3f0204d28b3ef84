"""Creates BERT pretraining TFRecords (masked LM + next sentence) from plain-text documents.

    python tools/create_pretraining_data.py --input_file=corpus.txt \
        --vocab_file=vocab.txt --output_file=data/pretrain.tfrecord --num_shards=4 \
        --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=10

Input: one sentence per line, a blank line between documents (the original
BERT format), or running text with --split_sentences. Output: the features of
Google's create_pretraining_data.py (input_ids, input_mask, segment_ids,
masked_lm_positions, masked_lm_ids, masked_lm_weights, next_sentence_labels,
1 = random next); the same --random_seed gives identical files. Read them with
`tfllm.data.pretraining.pretraining_dataset` or `recipes/pretrain_bert.py --input_files`.
"""

from absl import app
from absl import flags

from tfllm.cli import run

flags.DEFINE_list("input_file", None, "Comma-separated input text files (globs allowed).", required=True)
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary file.", required=True)
flags.DEFINE_string("output_file", None, "Output TFRecord path; with --num_shards > 1, "
                    "<output_file>-0000i-of-0000n.", required=True)
flags.DEFINE_integer("num_shards", 1, "Number of output files.", lower_bound=1)
flags.DEFINE_bool("lowercase", True, "Lower-case text before WordPiece (BERT uncased).")
flags.DEFINE_bool("split_sentences", False, "Split lines into sentences on . ! ? instead of "
                  "taking one sentence per line.")
flags.DEFINE_bool("do_whole_word_mask", False, "Mask all WordPiece pieces of a word together.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per instance, [CLS]/[SEP] included.", lower_bound=5)
flags.DEFINE_integer("max_predictions_per_seq", 20, "Most masked-LM predictions per instance.", lower_bound=1)
flags.DEFINE_float("masked_lm_prob", 0.15, "Fraction of tokens to predict.")
flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter target length (as in BERT).")
flags.DEFINE_integer("dupe_factor", 10, "Passes over the data, each with different masks.", lower_bound=1)
flags.DEFINE_integer("random_seed", 12345, "Seed: the same seed gives identical output.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf  # noqa: PLC0415  (slow: after the flag checks)

    from tfllm.data.pretraining import create_pretraining_data  # noqa: PLC0415  (slow: after the flag checks)

    inputs = sorted({path for pattern in FLAGS.input_file for path in tf.io.gfile.glob(pattern)})
    if not inputs:
        raise app.UsageError(f"--input_file={','.join(FLAGS.input_file)} matches no file")
    _, stats = create_pretraining_data(
        inputs, FLAGS.vocab_file, FLAGS.output_file, num_shards=FLAGS.num_shards,
        max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
        dupe_factor=FLAGS.dupe_factor, whole_word_mask=FLAGS.do_whole_word_mask,
        split_into_sentences=FLAGS.split_sentences, lowercase=FLAGS.lowercase,
        seed=FLAGS.random_seed, log=lambda message: print(message, flush=True),
    )
    print(f"Summary: {stats.summary()}", flush=True)


if __name__ == "__main__":
    run(main)
