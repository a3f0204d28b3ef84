"""Build a BERT pretraining corpus (one sentence per line, blank line between documents) from local text.

    python tools/build_corpus.py --output=runs/corpus.txt \
        --tsv=../shared/data/sst2/train.tsv --text=../shared/data/tinyshakespeare/input.txt

- `--tsv` files: the `--text_column` of every row is a sentence; exact
  duplicates and rows under `--min_words` words are dropped (counted), and
  every `--lines_per_document` rows in file order form one document.
- `--text` files: running text; blank lines end documents, each non-empty
  line is a sentence.
- `--conll` files (CoNLL NER format): the words of each sentence joined by
  spaces; `-DOCSTART-` lines start documents. Tags are not read.
- `--squad` files (SQuAD v1.1 JSON): each distinct paragraph of the
  `--squad_articles` is a document, split into sentences on . ! ?; questions
  and answers are not read (keep the articles you evaluate QA on out).

Labels are never read: the corpus is unlabelled text only.
"""

from absl import app
from absl import flags

from tfllm.data import read_conll
from tfllm.data import read_table_column
from tfllm.data.pretraining import read_documents
from tfllm.data.pretraining import split_sentences
from tfllm.data.squad import parse_article_range
from tfllm.data.squad import read_squad

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


def tsv_documents(path, seen, counts):
    """Documents of `lines_per_document` distinct, long-enough rows of `path`."""
    lines = []
    for text in read_table_column(path, FLAGS.text_column):
        text = " ".join(text.split())
        if len(text.split()) < FLAGS.min_words:
            counts["too short"] += 1
        elif text in seen:
            counts["duplicate"] += 1
        else:
            seen.add(text)
            lines.append(text)
    return [lines[i : i + FLAGS.lines_per_document] for i in range(0, len(lines), FLAGS.lines_per_document)]


def conll_documents(path):
    documents = {}
    for sentence in read_conll(path):
        documents.setdefault(sentence.document, []).append(" ".join(sentence.words))
    return list(documents.values())


def squad_documents(path, articles):
    contexts = dict.fromkeys(example.context for example in read_squad(path, articles))
    return [split_sentences(context) for context in contexts]


def main(_):
    if not (FLAGS.tsv or FLAGS.text or FLAGS.conll or FLAGS.squad):
        raise flags.IllegalFlagValueError("give at least one --tsv, --text, --conll or --squad file")
    try:
        articles = parse_article_range(FLAGS.squad_articles, "--squad_articles")
    except ValueError as e:
        raise flags.IllegalFlagValueError(str(e)) from None
    documents, seen = [], set()
    for path in FLAGS.tsv:
        counts = {"too short": 0, "duplicate": 0}
        docs = tsv_documents(path, seen, counts)
        print(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} documents (dropped "
              f"{counts['duplicate']:,} duplicates, {counts['too short']:,} under {FLAGS.min_words} words)")
        documents += docs
    for path in FLAGS.text:
        docs = read_documents([path])
        print(f"{path}: {sum(map(len, docs)):,} lines in {len(docs):,} documents")
        documents += docs
    for path in FLAGS.conll:
        docs = conll_documents(path)
        print(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} documents")
        documents += docs
    for path in FLAGS.squad:
        docs = squad_documents(path, articles)
        print(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} paragraphs of articles "
              f"{FLAGS.squad_articles}")
        documents += docs
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write("\n".join("\n".join(doc) + "\n" for doc in documents))
    words = sum(len(line.split()) for doc in documents for line in doc)
    print(f"wrote {FLAGS.output}: {len(documents):,} documents, {words:,} words")


if __name__ == "__main__":
    app.run(main)
