"""BERT pretraining data: masking rates and rules, NSP pairs, whole-word masking, records, determinism.

Statistical checks use 5-sigma binomial bounds (a false failure about once in
3.5 million runs), on samples of ~15,000 masked tokens; seeds are fixed, so the
tests are deterministic anyway.
"""

import json
import math
import random

import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import pretraining as pt
from tfllm.data.corpus import build_corpus
from tfllm.data.squad import parse_article_range
from tfllm.tokenizers import RESERVED_TOKENS

WORDS = [f"w{i}" for i in range(600)]
PIECES = [f"##p{i}" for i in range(50)]
VOCAB_TOKENS = list(RESERVED_TOKENS) + WORDS + PIECES
VOCAB = pt.PretrainingVocab.from_tokens(VOCAB_TOKENS)
FIRST_WORD, FIRST_PIECE = len(RESERVED_TOKENS), len(RESERVED_TOKENS) + len(WORDS)
BLOCK = 6  # document d uses only words [d*BLOCK, (d+1)*BLOCK): the words tell the document


def synthetic_documents(num_documents=100, sentences=(3, 12), length=(2, 9), seed=0):
    """Documents of id arrays; document d's words come from its own block of the vocabulary."""
    rng = np.random.default_rng(seed)
    return [
        [FIRST_WORD + d * BLOCK + rng.integers(0, BLOCK, size=rng.integers(*length))
         for _ in range(rng.integers(*sentences))]
        for d in range(num_documents)
    ]


def unmask(instance):
    """The instance's tokens before masking."""
    tokens = list(instance.token_ids)
    for position, original in zip(instance.masked_lm_positions, instance.masked_lm_ids):
        tokens[position] = original
    return tokens


def within(observed, n, p, sigmas=5):
    return abs(observed / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def instances():
    found, stats = pt.create_instances(synthetic_documents(), VOCAB, max_seq_length=64, dupe_factor=20,
                                       max_predictions_per_seq=10, seed=1, log_every=0)
    return found, stats


def test_masking_count_and_80_10_10_rates(instances):
    found, stats = instances
    assert stats.instances == len(found) > 2000
    mask = keep = other = 0
    for instance in found:
        n, positions = len(instance.token_ids), instance.masked_lm_positions
        assert len(positions) == min(10, max(1, round(0.15 * n)))  # BERT's count, exactly
        assert positions == sorted(set(positions))
        for position, original in zip(positions, instance.masked_lm_ids):
            token = instance.token_ids[position]
            mask += token == VOCAB.mask_id
            keep += token == original
            other += token not in (VOCAB.mask_id, original)
    total = mask + keep + other
    assert total == stats.masked > 10000
    v = VOCAB.size  # a random replacement may draw [MASK] or the original token itself
    assert within(mask, total, 0.8 + 0.1 / v), mask / total
    assert within(keep, total, 0.1 + 0.1 / v), keep / total
    assert within(other, total, 0.1 * (v - 2) / v), other / total


def test_special_tokens_and_padding_never_masked(instances, tmp_path):
    found, _ = instances
    for instance in found[:500]:
        tokens = unmask(instance)
        assert tokens[0] == VOCAB.cls_id and tokens[-1] == VOCAB.sep_id
        assert not {tokens[p] for p in instance.masked_lm_positions} & {VOCAB.cls_id, VOCAB.sep_id}
    # And in the records: every real prediction points at a real, non-special token.
    path = pt.write_instances(found[:500], str(tmp_path / "r.tfrecord"), 1, 64, 10)[0]
    for features, labels in pt.pretraining_dataset(path, 100, training=False):
        real = labels["masked_lm_weights"].numpy() > 0
        positions = features["masked_lm_positions"].numpy()
        padding_mask = np.take_along_axis(features["padding_mask"].numpy(), positions, axis=1)
        assert padding_mask[real].all() and (positions[real] > 0).all()
        assert not np.isin(labels["masked_lm_ids"].numpy()[real], [VOCAB.pad_id, VOCAB.cls_id, VOCAB.sep_id]).any()
        assert (positions[~real] == 0).all() and (labels["masked_lm_ids"].numpy()[~real] == 0).all()


def test_next_sentence_labels_balanced_and_meaningful(instances):
    found, _ = instances
    random_next = 0
    for instance in found:
        tokens = np.array(unmask(instance))
        segments = np.array(instance.segment_ids)
        a = tokens[(segments == 0)][1:-1]  # without [CLS] ... [SEP]
        b = tokens[(segments == 1)][:-1]
        doc_a, docs_b = set((a - FIRST_WORD) // BLOCK), set((b - FIRST_WORD) // BLOCK)
        assert len(doc_a) == 1 and len(docs_b) == 1
        assert (docs_b != doc_a) == instance.is_random_next  # label 1 = B from another document
        random_next += instance.is_random_next
    # A coin flip, except that a chunk of one sentence always gets a random next (as in BERT):
    # about 1 instance in 25 here, so the rate sits a little above 1/2.
    n = len(found)
    assert 0.5 - 5 * math.sqrt(0.25 / n) <= random_next / n <= 0.5 + 5 * math.sqrt(0.25 / n) + 0.05


def test_whole_word_masking_masks_all_pieces_of_a_word():
    rng = random.Random(0)
    words = [[FIRST_WORD + i] + [FIRST_PIECE + j for j in range(i % 4)] for i in range(40)]  # 1-4 pieces
    partial = {True: 0, False: 0}
    for whole_word in (True, False):
        for _ in range(300):
            rng.shuffle(words)
            tokens = [VOCAB.cls_id] + [t for w in words[:12] for t in w] + [VOCAB.sep_id]
            _, positions, _ = pt.create_masked_lm_predictions(tokens, VOCAB, 0.15, 20, whole_word, rng)
            start = 1
            for word in words[:12]:
                masked = [start + k in positions for k in range(len(word))]
                partial[whole_word] += any(masked) and not all(masked)
                start += len(word)
    assert partial[True] == 0
    assert partial[False] > 50  # without it, words are split (so the test can fail)


def test_records_round_trip(instances, tmp_path):
    found, _ = instances
    found = found[:37]
    paths = pt.write_instances(found, str(tmp_path / "data" / "r"), 3, 64, 10)
    assert [p.rsplit("/", 1)[1] for p in paths] == [f"r-0000{i}-of-00003" for i in range(3)]
    batches = [pt.pretraining_dataset(p, 8, training=False, trim_padding=False) for p in paths]
    read = [(features, labels) for ds in batches for features, labels in ds.unbatch()]
    expected = [found[i] for shard in range(3) for i in range(shard, len(found), 3)]  # round robin
    assert len(read) == len(expected)
    for (features, labels), instance in zip(read, expected):
        n, p = len(instance.token_ids), len(instance.masked_lm_positions)
        assert features["token_ids"].numpy().tolist() == instance.token_ids + [0] * (64 - n)
        assert features["segment_ids"].numpy().tolist() == instance.segment_ids + [0] * (64 - n)
        assert features["padding_mask"].numpy().tolist() == [True] * n + [False] * (64 - n)
        assert features["masked_lm_positions"].numpy().tolist() == instance.masked_lm_positions + [0] * (10 - p)
        assert labels["masked_lm_ids"].numpy().tolist() == instance.masked_lm_ids + [0] * (10 - p)
        assert labels["masked_lm_weights"].numpy().tolist() == [1.0] * p + [0.0] * (10 - p)
        assert int(labels["next_sentence_labels"]) == int(instance.is_random_next)
    # Trimmed batches are cut to their longest row, nothing else changes.
    features, _ = next(iter(pt.pretraining_dataset(paths[0], 13, training=False)))
    assert features["token_ids"].shape[1] == max(len(found[i].token_ids) for i in range(0, 37, 3))


def test_sharding_by_files_or_by_records(instances, tmp_path):
    found, _ = instances
    many = pt.write_instances(found[:40], str(tmp_path / "many" / "r"), 4, 64, 10)
    one = pt.write_instances(found[:40], str(tmp_path / "one" / "r"), 1, 64, 10)

    def ids(pattern, pipeline):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = pt.pretraining_dataset(pattern, 4, training=False, input_context=context, trim_padding=False)
        return [tuple(f["token_ids"].numpy()) for f, _ in ds.unbatch()]

    everything = {tuple(i.token_ids + [0] * (64 - len(i.token_ids))) for i in found[:40]}
    for pattern in (str(tmp_path / "many" / "r-*"), one[0]):
        first, second = ids(pattern, 0), ids(pattern, 1)
        assert len(first) == len(second) == 20
        assert set(first) | set(second) == everything and not set(first) & set(second)
    assert len(many) == 4


def write_corpus(path, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for _ in range(60):
            for _ in range(rng.integers(2, 8)):
                f.write(" ".join(rng.choice(WORDS[:50], size=rng.integers(3, 10))) + " w1p0\n")
            f.write("\n")


def test_same_seed_same_files_different_seed_different(tmp_path):
    write_corpus(tmp_path / "corpus.txt", 0)
    vocab = VOCAB_TOKENS  # "w1p0" -> w1 ##p0: a word of two pieces

    def create(name, seed):
        paths, stats = pt.create_pretraining_data(
            [str(tmp_path / "corpus.txt")], vocab, str(tmp_path / name / "data"), num_shards=2,
            max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2, whole_word_mask=True,
            seed=seed, log=lambda _: None,
        )
        return [open(p, "rb").read() for p in paths], stats

    first, stats = create("a", 7)
    again, _ = create("b", 7)
    other, _ = create("c", 8)
    assert first == again
    assert first != other
    assert stats.documents == 60 and stats.instances > 100
    assert "60 documents" in stats.summary() and "truncated" in stats.summary()


def test_read_documents_and_split_sentences(tmp_path):
    (tmp_path / "a.txt").write_text("First one.\nSecond one.\n\n\nOther doc.\n")
    (tmp_path / "b.txt").write_text("Mr Smith left. He said: \"Stop!\" Then? Yes\nsame doc.\n")
    docs = pt.read_documents([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")])
    assert docs == [["First one.", "Second one."], ["Other doc."],
                    ["Mr Smith left. He said: \"Stop!\" Then? Yes", "same doc."]]
    docs = pt.read_documents([str(tmp_path / "b.txt")], split_into_sentences=True)
    assert docs == [["Mr Smith left.", "He said: \"Stop!\"", "Then?", "Yes same doc."]]


def test_build_corpus_groups_conll_documents_and_squad_paragraphs(tmp_path):
    """tools/build_corpus.py: text by blank-line document, CoNLL sentences by -DOCSTART- document, SQuAD paragraphs."""
    conll = tmp_path / "ner.txt"
    conll.write_text("-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n\n"
                     "-DOCSTART- -X- O O\n\nBRUSSELS NNP B-LOC\n")
    squad = tmp_path / "squad.json"

    def paragraph(context):
        return {"context": context, "qas": [
            {"id": context[:3], "question": "?", "answers": [{"text": context[:2], "answer_start": 0}]}]}

    squad.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "A", "paragraphs": [paragraph("One sentence. Two here!"), paragraph("Second paragraph.")]},
        {"title": "B", "paragraphs": [paragraph("Held-out article.")]},
    ]}))
    text = tmp_path / "plays.txt"
    text.write_text("First line.\n  Second line.\n\n\nOther speech.")
    out = tmp_path / "corpus.txt"
    build_corpus(out, text=[text], conll=[conll], squad=[squad], squad_articles=parse_article_range("0:1", "x"),
                 log=lambda line: None)
    documents = [doc.split("\n") for doc in out.read_text().strip().split("\n\n")]
    assert documents == [["First line.", "Second line."], ["Other speech."],
                         ["EU rejects", "Peter Blackburn"], ["BRUSSELS"],
                         ["One sentence.", "Two here!"], ["Second paragraph."]]


# ---- Dynamic masking ------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamic_batches():
    tf.random.set_seed(0)
    ds = pt.masked_text_dataset(synthetic_documents(40, sentences=(2, 6)), VOCAB, 64, training=True, seed=3,
                                max_seq_length=24, max_predictions_per_seq=4)
    return [tuple(tf.nest.map_structure(lambda t: t.numpy(), batch)) for batch in ds.take(40)]


def test_dynamic_masking_rules_and_rates(dynamic_batches):
    mask = total = random_next = examples = 0
    for features, labels in dynamic_batches:
        tokens = features["token_ids"].copy()
        real = labels["masked_lm_weights"] > 0
        rows, cols = np.nonzero(real)
        positions = features["masked_lm_positions"][rows, cols]
        original = labels["masked_lm_ids"][rows, cols]
        mask += (tokens[rows, positions] == VOCAB.mask_id).sum()
        total += len(rows)
        tokens[rows, positions] = original
        assert features["padding_mask"][rows, positions].all()
        assert not np.isin(original, [VOCAB.pad_id, VOCAB.cls_id, VOCAB.sep_id]).any()
        # keras-hub's generator: ceil(15% of the maskable tokens), at most 4.
        maskable = features["padding_mask"].sum(1) - 3
        np.testing.assert_array_equal(real.sum(1), np.minimum(np.ceil(0.15 * maskable), 4))
        # Label 1 <=> B comes from another document.
        for row in range(len(tokens)):
            segment = features["segment_ids"][row][features["padding_mask"][row]]
            words = tokens[row][features["padding_mask"][row]]
            doc_a = set((words[1:][segment[1:] == 0][:-1] - FIRST_WORD) // BLOCK)
            doc_b = set((words[segment == 1][:-1] - FIRST_WORD) // BLOCK)
            assert len(doc_a) == 1 and len(doc_b) == 1
            assert (doc_a != doc_b) == bool(labels["next_sentence_labels"][row])
        random_next += labels["next_sentence_labels"].sum()
        examples += len(tokens)
    assert within(mask, total, 0.8 + 0.1 / VOCAB.size)
    assert within(random_next, examples, 0.5)


def test_dynamic_masking_changes_between_epochs(dynamic_batches):
    """The same A sentence gets other masks (and pairs) in a later pass over the data."""
    seen = {}
    changed = same = 0
    for features, labels in dynamic_batches:
        tokens = features["token_ids"].copy()
        real = labels["masked_lm_weights"] > 0
        rows, cols = np.nonzero(real)
        tokens[rows, features["masked_lm_positions"][rows, cols]] = labels["masked_lm_ids"][rows, cols]
        for row in range(len(tokens)):
            key = tuple(tokens[row][features["segment_ids"][row] == 0])  # unmasked [CLS] A [SEP]
            value = (tuple(features["masked_lm_positions"][row]), tuple(tokens[row]))
            if key in seen:
                changed += seen[key] != value
                same += seen[key] == value
            seen[key] = value
    assert changed > 10 * max(same, 1)
