"""Builds a WordPiece vocabulary file, or a GPT-2 byte-level BPE vocabulary, from text files.

    python tools/build_vocab.py --input=../shared/data/sst2/train.tsv \
        --text_column=sentence --output=runs/sst2/vocab.txt --vocab_size=8000
    python tools/build_vocab.py --type=bpe --input=../shared/data/tinyshakespeare/input.txt \
        --output=runs/shakespeare_bpe --vocab_size=4000

`--type=sentencepiece` trains one SentencePiece model (unigram) over all
inputs, e.g. both sides of a parallel corpus for a shared translation
vocabulary, and writes it to --output (`recipes/translate.py --spm_model`):

    python tools/build_vocab.py --type=sentencepiece --vocab_size=8000 \
        --input=../shared/data/multi30k/train.en,../shared/data/multi30k/train.de \
        --output=runs/multi30k/spm.model

`--type=bpe` writes vocab.json and merges.txt (GPT-2's file formats, read by
`tfllm.tokenizers.BytePairTokenizer`) into the --output folder; it is trained
with Hugging Face `tokenizers`' `ByteLevelBPETokenizer`.

Plain-text inputs give one text per line; `.tsv`/`.csv` inputs (or any input
when --text_column is set) are read as tables with a header row.
"""

from absl import flags

from tfllm.cli import run

flags.DEFINE_list("input", None, "Comma-separated input files.", required=True)
flags.DEFINE_string("output", None, "Vocabulary file to write (--type=bpe: a folder).", required=True)
flags.DEFINE_integer(
    "vocab_size", 8000, "Maximum vocabulary size, reserved tokens included.", lower_bound=6
)
flags.DEFINE_bool("lowercase", True, "Lower-case and strip accents (BERT uncased; wordpiece only).")
flags.DEFINE_string("text_column", None, "Text column of TSV/CSV inputs (default: 'sentence').")
flags.DEFINE_enum("type", "wordpiece", ["wordpiece", "bpe", "sentencepiece"],
                  "Tokenizer type: BERT WordPiece, GPT-2 byte-level BPE, or SentencePiece (translation).")
flags.DEFINE_integer("min_frequency", 2, "BPE: minimum count of a pair to be merged.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfllm.data import vocabulary_files  # noqa: PLC0415  (slow: TensorFlow, after the flag checks)

    print(
        f"Building a {FLAGS.type} vocabulary of up to {FLAGS.vocab_size} tokens "
        f"from {', '.join(FLAGS.input)}"
    )
    if FLAGS.type == "sentencepiece":
        from tfllm.data.parallel_text import read_lines  # noqa: PLC0415  (slow: TensorFlow, after the flag checks)
        from tfllm.tokenizers.sentence_piece import train_sentence_piece  # noqa: PLC0415  (likewise)

        texts = [line for path in FLAGS.input for line in read_lines(path)]
        train_sentence_piece(texts, FLAGS.output, FLAGS.vocab_size)
        return
    if FLAGS.type == "bpe":
        vocabulary_files.build_byte_pair_files(FLAGS.input, FLAGS.output, FLAGS.vocab_size, FLAGS.text_column,
                                               FLAGS.min_frequency)
        return
    vocabulary_files.build_vocabulary_file(
        FLAGS.input,
        FLAGS.output,
        vocab_size=FLAGS.vocab_size,
        lowercase=FLAGS.lowercase,
        text_column=FLAGS.text_column,
    )


if __name__ == "__main__":
    run(main)
