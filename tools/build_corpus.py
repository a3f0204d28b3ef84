"""Build a BERT pretraining corpus (one sentence per line, blank line between documents) from local text.

    python tools/build_corpus.py --output=runs/corpus.txt \
        --tsv=../shared/data/sst2/train.tsv --text=../shared/data/tinyshakespeare/input.txt

Sources: `--tsv` text columns, `--text` running text, `--conll` sentences by
document, `--squad` paragraphs of `--squad_articles` (keep the articles you
evaluate QA on out). Labels are never read. What each source becomes:
`tfllm.data.corpus`.
"""

from absl import flags

from tfllm.cli import run
from tfllm.data.corpus import build_corpus
from tfllm.data.squad import parse_article_range

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "Corpus file to write.", required=True)
flags.DEFINE_list("tsv", [], "TSV/CSV files with a header row; their --text_column is used.")
flags.DEFINE_list("text", [], "Plain-text files (blank lines between documents).")
flags.DEFINE_list("conll", [], "CoNLL files (word first, tag last); their sentences, by -DOCSTART- document.")
flags.DEFINE_list("squad", [], "SQuAD v1.1 JSON files; the paragraphs of --squad_articles.")
flags.DEFINE_string("squad_articles", ":", "START:END article indices of the --squad files, e.g. 0:38.")
flags.DEFINE_string("text_column", "sentence", "Column of the --tsv files holding the text.")
flags.DEFINE_integer("min_words", 3, "--tsv rows with fewer words are dropped.", lower_bound=1)
flags.DEFINE_integer("lines_per_document", 10, "--tsv rows per document.", lower_bound=1)


def main(_):
    if not (FLAGS.tsv or FLAGS.text or FLAGS.conll or FLAGS.squad):
        raise flags.IllegalFlagValueError("give at least one --tsv, --text, --conll or --squad file")
    try:
        articles = parse_article_range(FLAGS.squad_articles, "--squad_articles")
    except ValueError as e:
        raise flags.IllegalFlagValueError(str(e)) from None
    build_corpus(FLAGS.output, tsv=FLAGS.tsv, text=FLAGS.text, conll=FLAGS.conll, squad=FLAGS.squad,
                 squad_articles=articles, text_column=FLAGS.text_column, min_words=FLAGS.min_words,
                 lines_per_document=FLAGS.lines_per_document)


if __name__ == "__main__":
    run(main)
