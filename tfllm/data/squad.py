"""SQuAD v1.1 input: read the JSON, cut question + context into model windows, build `tf.data` pipelines.

Each window is `[CLS] question [SEP] context piece [SEP]` (segment ids 0 for
`[CLS] question [SEP]`, 1 for the rest), as in BERT's `run_squad.py`, or with
a byte-level BPE tokenizer RoBERTa's `<s> question </s></s> context piece </s>`
(segment ids all 0), as `RobertaPreprocessor` packs a pair: the
question is cut to `max_query_length` tokens (counted and logged), and a
context too long for one window is covered by windows starting every
`doc_stride` tokens. A window's target is the token span of the (first) gold
answer, or `[CLS]` (position 0) when the answer is not wholly inside it.

The answer's character span is mapped to tokens through the character
offsets of each token (`WordPieceOffsets`, `BytePairOffsets`), and predictions are
mapped back the same way, so predicted text is always a slice of the original
context (no re-alignment heuristics as in BERT's `get_final_text`).
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfllm.data.batching import batch_by_length
from tfllm.data.errors import DataError
from tfllm.data.text_files import read_text
from tfllm.errors import ConfigError
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.bert.preprocessors import preprocessor_for
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.byte_pair_offsets import BytePairOffsets
from tfllm.tokenizers.word_piece_offsets import WordPieceOffsets


def token_offsets(tokenizer):
    """The offset tokenizer of `tokenizer`: `BytePairOffsets` for byte-level BPE, else `WordPieceOffsets`."""
    return (BytePairOffsets if isinstance(tokenizer, BytePairTokenizer) else WordPieceOffsets)(tokenizer)


def window_packer(tokenizer_or_preprocessor):
    """`(tokenizer, preprocessor)`: a preprocessor's own tokenizer, or a tokenizer and `preprocessor_for` it.

    The preprocessor only says how a pair is packed (its special ids,
    `separator_length`, `distinct_segment_ids`): BERT's or RoBERTa's.
    """
    if isinstance(tokenizer_or_preprocessor, BertPreprocessor):
        return tokenizer_or_preprocessor.tokenizer, tokenizer_or_preprocessor
    return tokenizer_or_preprocessor, preprocessor_for(tokenizer_or_preprocessor)


@dataclasses.dataclass
class SquadExample:
    """One question: its context and its gold answers (texts and character starts)."""

    id: str
    question: str
    context: str
    answers: list
    answer_starts: list
    title: str = ""


def parse_article_range(value, flag="--articles"):
    """`"0:38"` -> `slice(0, 38)`; `":"`, `"all"` or empty -> every article. Errors name `flag`."""
    value = (value or "").strip()
    if value in ("", ":", "all"):
        return slice(None)
    parts = value.split(":")
    try:
        if len(parts) != 2:
            raise ConfigError
        start, end = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ConfigError(f"{flag}={value!r}: expected START:END article indices, e.g. 0:38") from None
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise ConfigError(f"{flag}={value!r}: negative article indices are not supported")
    return slice(start, end)


def _require(condition, where, message):
    if not condition:
        raise DataError(f"{where}: {message}")


def read_squad(path, articles=slice(None)):
    """Reads SQuAD v1.1 JSON; returns the `SquadExample`s of `articles` (a slice of the article list).

    Raises `DataError` naming the file and the article / question id for a
    missing file, bad JSON, a missing or mistyped field, a duplicate id, a
    question without answers (SQuAD 2.0 unanswerable ones included) or an
    answer that is not the context text at its `answer_start`.
    """
    path = os.fspath(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    _require(isinstance(data, dict) and isinstance(data.get("data"), list), path,
             'expected the SQuAD layout {"version": ..., "data": [articles]}')
    all_articles = data["data"]
    chosen = range(len(all_articles))[articles]
    if not chosen:
        raise DataError(f"{path}: article range {articles.start}:{articles.stop} selects none of its "
                        f"{len(all_articles)} articles")
    examples, seen = [], set()
    for a in chosen:
        article = all_articles[a]
        where = f"{path}: article {a}"
        _require(isinstance(article, dict) and isinstance(article.get("paragraphs"), list), where,
                 "expected an object with a 'paragraphs' list")
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"{path}: article {a} ({title}) paragraph {p}"
            _require(isinstance(paragraph, dict) and isinstance(paragraph.get("context"), str)
                     and isinstance(paragraph.get("qas"), list), where,
                     "expected an object with a 'context' string and a 'qas' list")
            context = paragraph["context"]
            for q, qa in enumerate(paragraph["qas"]):
                _require(isinstance(qa, dict) and isinstance(qa.get("id"), str), f"{where} question {q}",
                         "expected an object with an 'id' string")
                examples.append(_read_question(qa, context, title, f"{path}: question {qa['id']}", seen))
    return examples


def _read_question(qa, context, title, where, seen):
    qid = qa["id"]
    _require(qid not in seen, where, "duplicate question id")
    seen.add(qid)
    question = qa.get("question")
    _require(isinstance(question, str) and question.strip(), where, "missing or empty 'question'")
    answers = qa.get("answers")
    _require(isinstance(answers, list) and answers, where,
             "no 'answers' (SQuAD 2.0 unanswerable questions are not supported)")
    texts, starts = [], []
    for k, answer in enumerate(answers):
        _require(isinstance(answer, dict) and isinstance(answer.get("text"), str) and answer["text"].strip(),
                 where, f"answer {k}: expected an object with a non-empty 'text'")
        start = answer.get("answer_start")
        _require(isinstance(start, int) and 0 <= start <= len(context) - len(answer["text"]), where,
                 f"answer {k}: answer_start={start!r} is not a character offset into the context "
                 f"({len(context)} characters)")
        found = context[start : start + len(answer["text"])]
        _require(found == answer["text"], where,
                 f"answer {k}: text {answer['text']!r} is not the context at answer_start={start} ({found!r})")
        texts.append(answer["text"])
        starts.append(start)
    return SquadExample(qid, question, context, texts, starts, title)


@dataclasses.dataclass
class SquadFeatures:
    """Model windows of a list of `SquadExample`s, and what is needed to map predictions back.

    Per window `i`: `token_ids[i]`, `segment_ids[i]` (int32 arrays),
    `start_positions[i]`, `end_positions[i]` (the target tokens; 0 = `[CLS]`),
    `example_index[i]` (its question), `char_starts[i]`, `char_ends[i]`
    (int32 per token: the context characters it covers, -1 outside the
    context) and `max_context[i]` (bool per token: this window gives the
    token its most context of all windows, as BERT's `_check_is_max_context`;
    decoding only starts answers there, so overlapping windows do not vote
    twice with worse context).
    """

    token_ids: list
    segment_ids: list
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    char_starts: list
    char_ends: list
    max_context: list
    stats: dict

    def __len__(self):
        return len(self.token_ids)


def doc_windows(num_tokens, window_length, doc_stride):
    """`(start, length)` windows over `num_tokens` tokens, one every `doc_stride` (BERT's doc spans)."""
    windows, start = [], 0
    while True:
        length = min(num_tokens - start, window_length)
        windows.append((start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, doc_stride)


def _max_context(windows, num_tokens):
    """For each window, a bool per its tokens: the window where the token has its most context."""
    best_score = np.full(num_tokens, -1.0)
    best_window = np.zeros(num_tokens, np.int64)
    for w, (start, length) in enumerate(windows):
        positions = np.arange(start, start + length)
        score = np.minimum(positions - start, start + length - 1 - positions) + 0.01 * length
        better = score > best_score[positions]
        best_score[positions[better]] = score[better]
        best_window[positions[better]] = w
    return [best_window[start : start + length] == w for w, (start, length) in enumerate(windows)]


def answer_token_span(char_starts, char_ends, answer_start, answer_end):
    """First and last token overlapping the characters `[answer_start, answer_end)`; None if none does."""
    first = int(np.searchsorted(char_ends, answer_start, side="right"))
    last = int(np.searchsorted(char_starts, answer_end, side="left")) - 1
    if first > last:
        return None
    return first, last


def squad_features(examples, tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64, name="squad"):
    """Cuts each example into windows of at most `max_seq_length` tokens; returns `SquadFeatures`.

    Args:
        examples: `SquadExample`s.
        tokenizer: a `WordPieceTokenizer` or `BytePairTokenizer`, or a
            `BertPreprocessor` / `RobertaPreprocessor` (its tokenizer and packing).
        max_seq_length: tokens per window, special tokens included.
        doc_stride: tokens between the starts of consecutive windows of one context.
        max_query_length: questions are cut to this many tokens (counted and logged).
        name: names the data in the log lines.

    Logs how many questions were truncated, how many needed several windows,
    how many windows point at `[CLS]` (answer outside), and (as a warning)
    answers no token covers and contexts whose ids could differ from
    `tokenizer(context)`. The same counts are in `.stats`.
    """
    tokenizer, packer = window_packer(tokenizer)
    num_special = packer.num_special_tokens(2)
    if max_query_length < 1 or max_query_length + num_special >= max_seq_length:
        raise ConfigError(f"max_query_length={max_query_length} leaves no room for the context in "
                         f"max_seq_length={max_seq_length} (needs max_query_length + {num_special} < "
                         "max_seq_length)")
    if doc_stride < 1:
        raise ConfigError(f"doc_stride={doc_stride} must be at least 1")
    cls_id, sep_id = packer.cls_token_id, packer.sep_token_id
    separator = [sep_id] * packer.separator_length

    # Tokenize each distinct context once (SQuAD has ~5 questions per paragraph).
    contexts = list(dict.fromkeys(e.context for e in examples))
    context_ids, context_starts, context_ends, mismatched = token_offsets(tokenizer)(contexts)
    context_index = {c: i for i, c in enumerate(contexts)}
    # Called eagerly, keras-hub tokenizers return Python lists.
    question_ids = [np.array(ids, np.int32) for ids in tokenizer([e.question for e in examples])]
    question_lengths = np.array([len(ids) for ids in question_ids])

    out = {k: [] for k in ("token_ids", "segment_ids", "start_positions", "end_positions", "example_index",
                           "char_starts", "char_ends", "max_context")}
    stats = dict(questions=len(examples), truncated_questions=int(np.sum(question_lengths > max_query_length)),
                 windows=0, multi_window_questions=0, windows_without_answer=0, answers_without_tokens=0)
    unmapped_ids = []
    for e, example in enumerate(examples):
        c = context_index[example.context]
        doc_ids, doc_starts, doc_ends = context_ids[c], context_starts[c], context_ends[c]
        query = question_ids[e][:max_query_length]
        answer = answer_token_span(doc_starts, doc_ends, example.answer_starts[0],
                                   example.answer_starts[0] + len(example.answers[0]))
        if answer is None:
            stats["answers_without_tokens"] += 1
            unmapped_ids.append(example.id)
        windows = doc_windows(len(doc_ids), max_seq_length - len(query) - num_special, doc_stride)
        stats["multi_window_questions"] += len(windows) > 1
        prefix = 1 + len(query) + len(separator)  # [CLS] question [SEP] (RoBERTa: <s> question </s></s>)
        for (start, length), max_context in zip(windows, _max_context(windows, len(doc_ids))):
            end = start + length
            token_ids = np.concatenate([[cls_id], query, separator, doc_ids[start:end], [sep_id]]).astype(np.int32)
            outside = np.full(prefix, -1, np.int32)
            out["token_ids"].append(token_ids)
            out["segment_ids"].append(np.repeat(np.array([0, int(packer.distinct_segment_ids)], np.int32),
                                                [prefix, length + 1]))
            out["char_starts"].append(np.concatenate([outside, doc_starts[start:end], [-1]]).astype(np.int32))
            out["char_ends"].append(np.concatenate([outside, doc_ends[start:end], [-1]]).astype(np.int32))
            out["max_context"].append(np.concatenate([np.zeros(prefix, bool), max_context, [False]]))
            out["example_index"].append(e)
            if answer is not None and start <= answer[0] and answer[1] < end:
                out["start_positions"].append(answer[0] - start + prefix)
                out["end_positions"].append(answer[1] - start + prefix)
            else:
                out["start_positions"].append(0)
                out["end_positions"].append(0)
                stats["windows_without_answer"] += 1
    stats["windows"] = len(out["token_ids"])

    logging.info("%s: %d questions -> %d windows of <= %d tokens (stride %d); %d questions span several "
                 "windows; %d windows do not hold the answer (target [CLS])", name, stats["questions"],
                 stats["windows"], max_seq_length, doc_stride, stats["multi_window_questions"],
                 stats["windows_without_answer"])
    logging.info("%s: %d of %d questions truncated to %d tokens (--max_query_length)", name,
                 stats["truncated_questions"], stats["questions"], max_query_length)
    if unmapped_ids:
        logging.warning("%s: %d answers cover no token (all characters deleted by normalization), target "
                        "[CLS]; first: question %s", name, len(unmapped_ids), unmapped_ids[0])
    if mismatched:
        logging.warning("%s: %d contexts normalize differently character by character than as a whole (or, "
                        "byte-level BPE: have bytes missing from the vocabulary); their token ids or offsets "
                        "may differ from the tokenizer's", name, mismatched)
    return SquadFeatures(
        token_ids=out["token_ids"], segment_ids=out["segment_ids"],
        start_positions=np.array(out["start_positions"], np.int32),
        end_positions=np.array(out["end_positions"], np.int32),
        example_index=np.array(out["example_index"], np.int32),
        char_starts=out["char_starts"], char_ends=out["char_ends"], max_context=out["max_context"], stats=stats,
    )


def _ragged(rows):
    lengths = np.array([len(r) for r in rows], np.int64)
    values = np.concatenate(rows) if rows else np.zeros([0], np.int32)
    return tf.RaggedTensor.from_row_lengths(values, lengths)


def squad_dataset(features, batch_size, training, seed=None, input_context=None, bucket_boundaries=None,
                  max_seq_length=None, with_labels=True):
    """A `tf.data.Dataset` of `(inputs, labels)` batches of windows (or `inputs` only: `with_labels=False`).

    Inputs are `token_ids`, `segment_ids` (int32 `[B, T]`) and `padding_mask`
    (bool `[B, T]`), padded to the longest window of the batch; labels are
    `{"start_positions", "end_positions"}` (int32 `[B]`). Training: shuffled
    (seeded, reshuffled each epoch), repeated, bucketed by length, full
    batches only. Else: every window once, in order (the order of
    `features`, which decoding relies on), last batch may be smaller.
    `input_context` shards windows over input pipelines (so leave it out
    when predicting for decoding).
    """
    token_ids, segment_ids = features.token_ids, features.segment_ids
    starts, ends = features.start_positions, features.end_positions
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        token_ids, segment_ids, starts, ends = token_ids[i::n], segment_ids[i::n], starts[i::n], ends[i::n]
    inputs = {"token_ids": _ragged(token_ids), "segment_ids": _ragged(segment_ids)}
    labels = {"start_positions": starts, "end_positions": ends}
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels) if with_labels else inputs)

    def add_padding_mask(x, *y):
        x = dict(x, padding_mask=tf.ones_like(x["token_ids"], dtype=tf.bool))
        return (x, *y) if y else x

    ds = ds.map(add_padding_mask)
    return batch_by_length(ds, batch_size, training, len(token_ids),
                           max_seq_length or max(len(t) for t in token_ids), seed=seed,
                           bucket_boundaries=bucket_boundaries)
