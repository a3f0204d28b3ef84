"""Build a BERT pretraining corpus (one sentence per line, blank line between documents) from local text.

    python tools/build_corpus.py --output=runs/corpus.txt \
        --tsv=../shared/data/sst2/train.tsv --text=../shared/data/tinyshakespeare/input.txt

- `--tsv` files: the `--text_column` of every row is a sentence; exact
  duplicates and rows under `--min_words` words are dropped (counted), and
  every `--lines_per_document` rows in file order form one document.
- `--text` files: running text; blank lines end documents, each non-empty
  line is a sentence.

Labels are never read: the corpus is unlabelled text only.
"""

from absl import app
from absl import flags

from tfllm.data import read_table_column

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "Corpus file to write.", required=True)
flags.DEFINE_list("tsv", [], "TSV/CSV files with a header row; their --text_column is used.")
flags.DEFINE_list("text", [], "Plain-text files (blank lines between documents).")
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


def text_documents(path):
    documents, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                documents.append(current)
                current = []
    return documents + ([current] if current else [])


def main(_):
    if not FLAGS.tsv and not FLAGS.text:
        raise flags.IllegalFlagValueError("give at least one --tsv or --text file")
    documents, seen = [], set()
    for path in FLAGS.tsv:
        counts = {"too short": 0, "duplicate": 0}
        docs = tsv_documents(path, seen, counts)
        print(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} documents (dropped "
              f"{counts['duplicate']:,} duplicates, {counts['too short']:,} under {FLAGS.min_words} words)")
        documents += docs
    for path in FLAGS.text:
        docs = text_documents(path)
        print(f"{path}: {sum(map(len, docs)):,} lines in {len(docs):,} documents")
        documents += docs
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write("\n".join("\n".join(doc) + "\n" for doc in documents))
    words = sum(len(line.split()) for doc in documents for line in doc)
    print(f"wrote {FLAGS.output}: {len(documents):,} documents, {words:,} words")


if __name__ == "__main__":
    app.run(main)
