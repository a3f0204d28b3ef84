"""Entity-level precision, recall and F1 for IOB1/BIO tag sequences (conlleval's definition).

An entity counts as found only if its type, first and last word all match
a gold entity (exact span match). Spans are read as conlleval and seqeval's
default mode read them: a chunk starts at `B-X`, or at `I-X` after `O` or
after a chunk of another type, and runs over the following `I-X`. Under
this reading IOB1 and BIO give the same spans, so gold and predicted tags
may use either scheme; an "illegal" BIO prediction (`I-X` after `O`) is an
entity start, as in the published CoNLL scores.

Pure Python: scores are computed once per evaluation on word-level tags,
outside the training graph. Checked equal to `seqeval` in the tests;
seqeval itself is not a runtime dependency (it pulls in scikit-learn for
this one loop).
"""

import collections


def split_tag(tag):
    """`"B-PER"` -> `("B", "PER")`, `"O"` -> `("O", None)`; raises ValueError for other shapes."""
    if tag == "O":
        return "O", None
    prefix, _, entity_type = tag.partition("-")
    if prefix not in ("B", "I") or not entity_type:
        raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")
    return prefix, entity_type


def entity_spans(tags):
    """The entities of one sentence: a list of `(type, first, last)` word indices (inclusive)."""
    spans = []
    start, open_type = None, None
    for i, tag in enumerate([*tags, "O"]):  # The final "O" closes a trailing entity.
        prefix, entity_type = split_tag(tag)
        if start is not None and (prefix != "I" or entity_type != open_type):
            spans.append((open_type, start, i - 1))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, open_type = i, entity_type
    return spans


def _prf(correct, predicted, gold):
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "predicted": predicted, "gold": gold, "correct": correct}


def entity_scores(gold_tags, predicted_tags):
    """Micro-averaged and per-type entity precision/recall/F1, plus word accuracy.

    Args:
        gold_tags, predicted_tags: lists of sentences, each a list of tags,
            with the same number of words per sentence.

    Returns `{"precision", "recall", "f1", "predicted", "gold", "correct",
    "accuracy", "words", "per_type": {type: {"precision", "recall", "f1",
    "predicted", "gold", "correct"}}}`; scores are fractions (0..1) and 0.0
    where undefined (no predicted or no gold entities), as seqeval does.
    """
    if len(gold_tags) != len(predicted_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(predicted_tags)} predicted")
    gold, predicted = set(), set()
    correct_words = words = 0
    for i, (g, p) in enumerate(zip(gold_tags, predicted_tags)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gold.update((i, *span) for span in entity_spans(g))
        predicted.update((i, *span) for span in entity_spans(p))
        correct_words += sum(a == b for a, b in zip(g, p))
        words += len(g)
    correct = gold & predicted
    counts = {name: collections.Counter(entity[1] for entity in entities)
              for name, entities in (("gold", gold), ("predicted", predicted), ("correct", correct))}
    per_type = {
        entity_type: _prf(counts["correct"][entity_type], counts["predicted"][entity_type],
                          counts["gold"][entity_type])
        for entity_type in sorted(set(counts["gold"]) | set(counts["predicted"]))
    }
    scores = _prf(len(correct), len(predicted), len(gold))
    scores.update(accuracy=correct_words / words if words else 0.0, words=words, per_type=per_type)
    return scores
