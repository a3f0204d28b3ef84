"""A BERT pretraining corpus (one sentence per line, blank line between documents) from local text.

What `tools/build_corpus.py` runs; each source kind becomes documents:

- TSV/CSV files: the `text_column` of every row is a sentence; exact
  duplicates and rows under `min_words` words are dropped (counted), and
  every `lines_per_document` rows in file order form one document.
- text files: running text; blank lines end documents, each non-empty line
  is a sentence.
- CoNLL files (NER format): the words of each sentence joined by spaces;
  `-DOCSTART-` lines start documents. Tags are not read.
- SQuAD v1.1 JSON: each distinct paragraph of the chosen articles is a
  document, split into sentences on . ! ?; questions and answers are not read.
"""

from tfllm.data.conll import read_conll
from tfllm.data.pretraining import read_documents
from tfllm.data.pretraining import split_sentences
from tfllm.data.squad import read_squad
from tfllm.data.text_classification import read_table_column


def tsv_documents(path, text_column, min_words, lines_per_document, seen, counts):
    """Documents of `lines_per_document` distinct rows of `path` with at least `min_words` words."""
    lines = []
    for text in read_table_column(path, text_column):
        text = " ".join(text.split())
        if len(text.split()) < min_words:
            counts["too short"] += 1
        elif text in seen:
            counts["duplicate"] += 1
        else:
            seen.add(text)
            lines.append(text)
    return [lines[i : i + lines_per_document] for i in range(0, len(lines), lines_per_document)]


def conll_documents(path):
    documents = {}
    for sentence in read_conll(path):
        documents.setdefault(sentence.document, []).append(" ".join(sentence.words))
    return list(documents.values())


def squad_documents(path, articles=None):
    contexts = dict.fromkeys(example.context for example in read_squad(path, articles))
    return [split_sentences(context) for context in contexts]


def build_corpus(output, tsv=(), text=(), conll=(), squad=(), squad_articles=None, text_column="sentence",
                 min_words=3, lines_per_document=10, log=print):
    """Write the corpus of all sources to `output`; logs a line per source. Returns the documents."""
    documents, seen = [], set()
    for path in tsv:
        counts = {"too short": 0, "duplicate": 0}
        docs = tsv_documents(path, text_column, min_words, lines_per_document, seen, counts)
        log(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} documents (dropped "
            f"{counts['duplicate']:,} duplicates, {counts['too short']:,} under {min_words} words)")
        documents += docs
    for path in text:
        docs = read_documents([path])
        log(f"{path}: {sum(map(len, docs)):,} lines in {len(docs):,} documents")
        documents += docs
    for path in conll:
        docs = conll_documents(path)
        log(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} documents")
        documents += docs
    for path in squad:
        docs = squad_documents(path, squad_articles)
        log(f"{path}: {sum(map(len, docs)):,} sentences in {len(docs):,} paragraphs of the chosen articles")
        documents += docs
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join("\n".join(doc) + "\n" for doc in documents))
    words = sum(len(line.split()) for doc in documents for line in doc)
    log(f"wrote {output}: {len(documents):,} documents, {words:,} words")
    return documents
