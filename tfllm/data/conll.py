"""CoNLL-format tagged text (e.g. CoNLL-2003 NER): read files, convert IOB1 to BIO, label vocabulary.

The format: one word per line, whitespace-separated columns, the tag in the
last column (CoNLL-2003: `word POS chunk NER`); a blank line ends a
sentence; `-DOCSTART-` lines mark documents and are skipped.

Models are trained on BIO tags (every entity starts with `B-`): in IOB1, the
scheme of the original CoNLL-2003 files, `B-` appears only where two
entities of one type touch, so an entity's first word would have two tags
depending on its left neighbour.
"""

import dataclasses
import os

import tensorflow as tf

from tfllm.data.errors import DataError
from tfllm.data.text_files import text_lines
from tfllm.errors import ConfigError
from tfllm.metrics.entities import split_tag
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import save_vocabulary

DOCSTART = "-DOCSTART-"
TAG_SCHEMES = ("auto", "iob1", "bio")


@dataclasses.dataclass
class TaggedSentence:
    """Words and their tags; `line` is the 1-based line of the first word (word j is on line `line + j`).

    `document` counts the `-DOCSTART-` lines before the sentence (0 in a
    file without them), so sentences can be regrouped into their documents.
    """

    words: list
    tags: list
    line: int
    document: int = 0


def read_conll(path):
    """Reads a CoNLL file into a list of `TaggedSentence`.

    Raises `DataError` naming the file, the 1-based line and what was
    expected, for a missing or empty file, a line with fewer than two
    columns or another number of columns than the file's first word line,
    or a tag that is not `O`, `B-<type>` or `I-<type>`.
    """
    path = os.fspath(path)
    sentences, words, tags = [], [], []
    num_columns = first_line = None
    document = 0

    def end_sentence(line_number):
        if words:
            sentences.append(TaggedSentence(list(words), list(tags), line_number - len(words), document))
            words.clear()
            tags.clear()

    line_number = 0
    for line_number, line in text_lines(path):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            end_sentence(line_number)
            document += bool(columns)
            continue
        where = f"{path}: line {line_number}"
        if len(columns) < 2:
            raise DataError(f"{where}: expected a word and a tag (whitespace-separated columns, "
                            f"the tag last), found {line.rstrip()!r}")
        if num_columns is None:
            num_columns, first_line = len(columns), line_number
        elif len(columns) != num_columns:
            raise DataError(f"{where}: expected {num_columns} columns as on line {first_line}, "
                            f"found {len(columns)}: {line.rstrip()!r}")
        try:
            split_tag(columns[-1])
        except ValueError as e:
            raise DataError(f"{where}: {e} (expected IOB1 or BIO tags in the last column)") from None
        words.append(columns[0])
        tags.append(columns[-1])
    end_sentence(line_number + 1)
    if not sentences:
        raise DataError(f"{path}: no tagged words found, expected lines like 'word ... tag'")
    return sentences


def _entity_starts_with_i(tags):
    """Positions where an `I-X` starts an entity (after `O` or another type): legal in IOB1 only."""
    starts, previous_type = [], None
    for i, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag)
        if prefix == "I" and entity_type != previous_type:
            starts.append(i)
        previous_type = entity_type
    return starts


def iob1_to_bio(tags):
    """IOB1 tags -> BIO tags: each entity's first `I-X` becomes `B-X`; the entities are the same."""
    bio = list(tags)
    for i in _entity_starts_with_i(tags):
        bio[i] = "B" + bio[i][1:]
    return bio


def to_bio(sentences, tag_scheme="auto", name="data"):
    """Returns `(sentences with BIO tags, the scheme found)`, converting IOB1 when asked or detected.

    Args:
        sentences: `TaggedSentence`s.
        tag_scheme: "iob1" (convert), "bio" (check that every entity starts
            with `B-`) or "auto": IOB1 if any entity starts with `I-`.
        name: the file name, for the error message.

    Raises `DataError` naming the line of the first entity that starts with
    `I-` when `tag_scheme="bio"`.
    """
    if tag_scheme not in TAG_SCHEMES:
        raise ConfigError(f"tag_scheme must be one of {TAG_SCHEMES}, got {tag_scheme!r}")
    for sentence in sentences:
        starts = _entity_starts_with_i(sentence.tags)
        if starts:
            if tag_scheme == "bio":
                i = starts[0]
                raise DataError(
                    f"{name}: line {sentence.line + i}: tag {sentence.tags[i]!r} starts an entity, "
                    f"which BIO tags as B-: the file looks IOB1; use tag scheme 'iob1' or 'auto'"
                )
            break
    else:
        return sentences, "bio"  # No entity starts with I-: already BIO (IOB1 would be the same).
    converted = [dataclasses.replace(s, tags=iob1_to_bio(s.tags)) for s in sentences]
    return converted, "iob1"


def label_vocabulary(sentences):
    """The sorted tags of the (training) sentences: label id = position in this list."""
    return sorted({tag for sentence in sentences for tag in sentence.tags})


def load_or_save_labels(path, sentences, save=True):
    """The label vocabulary saved at `path`, or a new one from `sentences`, saved there (if `save`).

    Saving the labels next to the checkpoints keeps ids stable between
    training, a resumed run, evaluation and export. Raises `DataError` if
    `sentences` use a tag the saved vocabulary lacks.
    """
    if tf.io.gfile.exists(path):
        labels = load_vocabulary(path)
        missing = sorted(set(label_vocabulary(sentences)) - set(labels))
        if missing:
            raise DataError(f"{path}: the saved labels {labels} lack the training tags {missing}; "
                            f"train in a new model_dir")
        return labels
    labels = label_vocabulary(sentences)
    if save:
        save_vocabulary(labels, path)
    return labels
