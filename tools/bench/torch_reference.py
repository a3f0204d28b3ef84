"""`--torch`: the PyTorch/`transformers` side of the benchmarks (eager, as people run it), when installed.

Each model function returns a callable timed like the TensorFlow variants,
built from the same configuration and the same token arrays; `None` (with
the reason printed) when torch or transformers is missing. `fine_tune` is
the one PyTorch fine-tuning loop of the references (with its data helpers
`shuffled_batches`, `padded`, `first_piece_rows` and `question_answering_windows`, and
`question_answering_answers`, run_qa.py's decoding). PyTorch uses every
core (`torch.set_num_threads(os.cpu_count())`), as TensorFlow does.
"""

import functools
import importlib.util
import os
import time

import numpy as np
from absl import flags


@functools.cache  # once per process: the message, the thread count and the seed
def available():
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"--torch: {' and '.join(missing)} not installed; PyTorch rows skipped "
              "(pip install torch==2.13.0 transformers)")
        return False
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    return True


def gpt2(config):
    """A randomly initialised `transformers.GPT2LMHeadModel` of a tfllm `Gpt` configuration."""
    import transformers  # noqa: PLC0415  (optional: --torch only, when installed)

    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=config["vocabulary_size"], n_positions=config["max_sequence_length"],
        n_embd=config["hidden_dim"], n_layer=config["num_layers"], n_head=config["num_heads"],
        n_inner=config["intermediate_dim"], resid_pdrop=config["dropout"], embd_pdrop=config["dropout"],
        attn_pdrop=config["dropout"], bos_token_id=config["vocabulary_size"] - 1,
        eos_token_id=config["vocabulary_size"] - 1))


def _train_step(model, inputs):
    """One AdamW update with global-norm clipping 1.0, like the TensorFlow variants; returns the loss."""
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())

    return step


def gpt_train_step(config, token_ids):
    """`GPT2LMHeadModel` trained on `token_ids` [batch, length] (the labels are the inputs, shifted inside)."""
    if not available():
        return None
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    ids = torch.from_numpy(np.asarray(token_ids, np.int64))
    return _train_step(gpt2(config), {"input_ids": ids, "labels": ids})


def bert_train_step(config, token_ids, labels):
    """`BertForSequenceClassification` (2 classes) trained on `token_ids` [batch, length] and `labels`."""
    if not available():
        return None
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)
    import transformers  # noqa: PLC0415  (optional: --torch only, when installed)

    model = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=config["vocabulary_size"], hidden_size=config["hidden_dim"],
        num_hidden_layers=config["num_layers"], num_attention_heads=config["num_heads"],
        intermediate_size=config["intermediate_dim"], max_position_embeddings=config["max_sequence_length"],
        hidden_dropout_prob=config["dropout"], attention_probs_dropout_prob=config["dropout"], num_labels=2))
    return _train_step(model, {"input_ids": torch.from_numpy(np.asarray(token_ids, np.int64)),
                               "labels": torch.from_numpy(np.asarray(labels, np.int64))})


def gpt_generate(config, prompts, new_tokens):
    """Greedy `GPT2LMHeadModel.generate` of exactly `new_tokens` per row (no early stop), key/value cache on."""
    if not available():
        return None
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    model = gpt2(dict(config, dropout=0.0)).eval()
    ids = torch.from_numpy(np.asarray(prompts, np.int64))

    def generate():
        with torch.inference_mode():
            return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
                                  use_cache=True)

    return generate


def fine_tune(model, batches, steps, learning_rate, warmup_ratio=0.1, weight_decay=0.01, clipnorm=1.0,
              epsilon=1e-6, log_every=0):
    """Fine-tune a `transformers` model as its users write the loop; returns (training seconds, loss per step).

    The one PyTorch loop of the fine-tuning references (`benchmark.py finetune`,
    tools/glue_transformers.py, tools/ner_transformers.py; tests/test_training_parity.py
    checks it against tfllm's Trainer step by step), with tfllm's
    `create_optimizer` settings: `torch.optim.AdamW` (weight decay off for
    biases and LayerNorm), `get_linear_schedule_with_warmup`, global-norm
    clipping, `steps` updates. `batches`: an iterator of keyword dicts for
    `model(**batch)` with `labels` (at least `steps` of them). Timed from the
    first batch to the last update; `log_every` > 0 prints the loss every so many steps.
    """
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)
    import transformers  # noqa: PLC0415  (optional: --torch only, when installed)

    def no_decay(name):
        return name.endswith("bias") or "LayerNorm" in name

    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not no_decay(n)], "weight_decay": weight_decay},
         {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}], lr=learning_rate, eps=epsilon)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * steps), steps)
    model.train()
    losses = []
    start = time.perf_counter()
    for step, batch in zip(range(steps), batches):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clipnorm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            print(f"step {step + 1}/{steps}  loss {losses[-1]:.4f}  {time.perf_counter() - start:.0f} s", flush=True)
    return time.perf_counter() - start, losses


def shuffled_batches(num_examples, batch_size, make_batch, seed):
    """Endless batches of `batch_size` indices, reshuffled each epoch (`numpy` seeded), through `make_batch`.

    Every batch is whole, like tfllm's: the tail of an epoch shorter than a
    batch is dropped.
    """
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(num_examples)
        for first in range(0, num_examples - batch_size + 1, batch_size):
            yield make_batch(order[first : first + batch_size])


def ordered_batches(num_examples, batch_size, make_batch):
    """Batches of `batch_size` indices in order (the last one may be shorter), through `make_batch`: evaluation."""
    for first in range(0, num_examples, batch_size):
        yield make_batch(np.arange(first, min(first + batch_size, num_examples)))


def predicted_logits(model, batches, names=("logits",)):
    """`model`'s logits on each of `batches` (keyword dicts), in eval mode without gradients: numpy, in order.

    `names`: the outputs to return; with several (a question-answering
    model's `("start_logits", "end_logits")`) each batch gives a tuple.
    """
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    model.eval()
    with torch.inference_mode():
        outputs = [tuple(out[name].numpy() for name in names) for out in (model(**batch) for batch in batches)]
    return [out[0] for out in outputs] if len(names) == 1 else outputs


def padded(sequences, pad_value):
    """`sequences` (lists or arrays of ints) as one int64 tensor padded with `pad_value` to the longest, and its
    attention mask (1 on real tokens): a batch padded to its longest row, as the references' DataLoaders do."""
    import torch  # noqa: PLC0415  (optional: --torch only, when installed)

    values = torch.full([len(sequences), max(len(s) for s in sequences)], pad_value, dtype=torch.long)
    mask = torch.zeros_like(values)
    for r, sequence in enumerate(sequences):
        values[r, : len(sequence)], mask[r, : len(sequence)] = torch.as_tensor(sequence), 1
    return values, mask


def first_piece_rows(tokenizer, sentences, label_ids, max_length):
    """Hugging Face's token-classification inputs of tagged sentences (`run_ner.py`'s first-piece labelling).

    `tokenizer`: a `transformers` fast tokenizer; `sentences`: objects with
    `.words` and `.tags`; `label_ids`: tag -> id (-100 for a tag not in it).
    Returns, per sentence, (token ids cut to `max_length`, labels: the tag id
    on each word's first piece and -100 elsewhere, the indices of the words
    kept, their first-piece positions).
    """
    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True,
                        max_length=max_length)
    rows = []
    for i, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(i)
        starts = [t for t, w in enumerate(word_ids) if w is not None and (t == 0 or word_ids[t - 1] != w)]
        labels = np.full(len(word_ids), -100, np.int64)
        for t in starts:
            labels[t] = label_ids.get(sentence.tags[word_ids[t]], -100)
        rows.append((encoded["input_ids"][i], labels, [word_ids[t] for t in starts], starts))
    return rows


def define_fine_tuning_flags(unit, head):
    """The flags the transformers reference tools share (recipes' names and defaults): checkpoint, optimizer,
    schedule, dropout, seed and threads. `unit` names a training row ("Examples"), `head` the new output layer."""
    flags.DEFINE_string("init_checkpoint", None, "A Hugging Face BERT folder.", required=True)
    flags.DEFINE_integer("batch_size", 32, f"{unit} per update.")
    flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
    flags.DEFINE_float("epochs", 3, "Passes over the training set.")
    flags.DEFINE_float("warmup_ratio", 0.1, "Fraction of updates with linear warmup.")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on biases and LayerNorm).")
    flags.DEFINE_float("clipnorm", 1.0, "Global gradient-norm clipping.")
    flags.DEFINE_float("dropout", 0.1, f"Dropout in the encoder and before the {head}.")
    flags.DEFINE_integer("seed", 0, f"Seed for the {head}, shuffling and dropout.")
    flags.DEFINE_integer("num_threads", None, "PyTorch intra-op threads (default: every core). On a machine "
                         "shared with other jobs 1 may be faster: OpenMP waits at the end of every "
                         "op for its slowest thread, and a descheduled thread stalls them all.", lower_bound=1)


def question_answering_windows(tokenizer, examples, max_length, stride, max_query_length):
    """Hugging Face's `run_qa.py` windows of SQuAD questions (`prepare_train_features`), labelled, with offsets.

    `tokenizer`: a `transformers` fast tokenizer; `examples`: tfllm
    `SquadExample`s. Question first (`lstrip`ped), the context cut with
    `truncation="only_second"`, `max_length` and `stride` (HF's stride is
    the overlap of consecutive windows, not the distance of their starts as
    BERT's and tfllm's `doc_stride`: run_qa.py passes `--doc_stride` to it
    all the same, and so does this). Questions of more than
    `max_query_length` pieces are cut first (as tfllm does; HF does not),
    at the end of their last piece kept. A window's labels are the tokens of
    the first answer's first and last characters (run_qa.py's offset
    walk), or 0, 0 ([CLS]) when the answer is not wholly inside the window.
    Returns `(rows, truncated questions)`; a row per window is `(input_ids,
    token_type_ids, start, end, example index, offsets)`, offsets `(char
    start, char end)` for context tokens and None elsewhere.
    """
    questions = [e.question.lstrip() for e in examples]
    truncated = 0
    pieces = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for i, offsets in enumerate(pieces):
        if len(offsets) > max_query_length:
            questions[i] = questions[i][: offsets[max_query_length - 1][1]]
            truncated += 1
    encoded = tokenizer(questions, [e.context for e in examples], truncation="only_second", max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    rows = []
    for w, (ids, offsets) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"])):
        sequence_ids = encoded.sequence_ids(w)
        example = examples[encoded["overflow_to_sample_mapping"][w]]
        context = [t for t, s in enumerate(sequence_ids) if s == 1]
        first, last = context[0], context[-1]
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])
        start = end = 0
        if offsets[first][0] <= answer_start and offsets[last][1] >= answer_end:
            start = first
            while start < len(offsets) and offsets[start][0] <= answer_start:
                start += 1
            start -= 1
            end = last
            while offsets[end][1] >= answer_end:
                end -= 1
            end += 1
        rows.append((ids, encoded["token_type_ids"][w], start, end, encoded["overflow_to_sample_mapping"][w],
                     [tuple(o) if s == 1 else None for o, s in zip(offsets, sequence_ids)]))
    return rows, truncated


def question_answering_answers(examples, rows, logits, n_best_size, max_answer_length):
    """run_qa.py's answer per question (`postprocess_qa_predictions`): {example id: text}.

    Over all windows of a question (`rows` as `question_answering_windows`
    gives them, `logits` a (start, end) pair of arrays per row), the best
    start + end logit sum among each window's `n_best_size` best starts and
    ends, both in the context, end >= start, at most `max_answer_length`
    tokens; the text is the context's characters between their offsets
    ("" when no pair is valid).
    """
    candidates = [[] for _ in examples]
    for (ids, _, _, _, e, offsets), (starts, ends) in zip(rows, logits):
        starts, ends = starts[: len(ids)], ends[: len(ids)]
        best_ends = np.argsort(ends)[-1 : -n_best_size - 1 : -1]
        for s in np.argsort(starts)[-1 : -n_best_size - 1 : -1]:
            for t in best_ends:
                if offsets[s] is not None and offsets[t] is not None and s <= t < s + max_answer_length:
                    candidates[e].append((starts[s] + ends[t], offsets[s][0], offsets[t][1]))
    answers = {}
    for example, found in zip(examples, candidates):
        best = max(found, key=lambda c: c[0], default=None)
        answers[example.id] = example.context[best[1] : best[2]] if best else ""
    return answers
