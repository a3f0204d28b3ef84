"""tfllm.prompting: cloze and in-context scores against transformers, encoding, few-shot learning end to end."""

import json

import numpy as np
import pytest

from tests.run_script import run_script
from tests.test_classify_recipe import FILLER
from tests.test_classify_recipe import NEGATIVE
from tests.test_classify_recipe import POSITIVE
from tests.test_classify_recipe import write_toy_tsv
from tests.test_pretrained import T
from tests.test_pretrained import bpe_files  # noqa: F401  (fixture)
from tests.test_pretrained import hf_bert_dirs  # noqa: F401  (fixture)
from tests.test_pretrained import hf_gpt2_dir  # noqa: F401  (fixture)
from tests.test_pretrained import sentences
from tests.test_pretrained import vocab_file  # noqa: F401  (fixture)
from tfllm import prompting
from tfllm.data import read_labeled_text
from tfllm.models import Bert
from tfllm.models import BertPretrainer
from tfllm.models import GptCausalLM
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers import load_tokenizer

torch = pytest.importorskip("torch")


def test_template_and_verbalizer_parsing():
    t = prompting.PromptTemplate("Review: {sentence} Sentiment: [MASK].")
    assert t.fill("fun", "great") == "Review: fun Sentiment: great."
    assert t.prefix("fun") == "Review: fun Sentiment:"
    assert t.label_continuation("great") == " great"
    for bad in ("{sentence} no slot", "[MASK] {sentence}", "{sentence} [MASK] [MASK]"):
        with pytest.raises(ValueError, match="template"):
            prompting.PromptTemplate(bad)
    assert prompting.Verbalizer("1:great,0:terrible").words == ["terrible", "great"]
    for bad in ("great", "0:a,2:b", "a,a", "a,"):
        with pytest.raises(ValueError, match="verbalizer"):
            prompting.Verbalizer(bad)


def test_sample_per_class_is_seeded_and_balanced():
    labels = np.array([0, 1] * 50 + [1] * 10)
    a = prompting.sample_per_class(labels, 4, 2, seed=3)
    assert np.array_equal(a, prompting.sample_per_class(labels, 4, 2, seed=3))
    assert np.bincount(labels[a]).tolist() == [4, 4] and len(set(a)) == 8
    with pytest.raises(ValueError, match="class 2 has only 0"):
        prompting.sample_per_class(labels, 4, 3, seed=0)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "it", "was", ".", "a", "good", "film", "bad", "##ly",
         "made"]


def test_encode_cloze_cuts_the_sentence_never_the_template():
    tok = WordPieceTokenizer(VOCAB)
    features, cut = prompting.encode_cloze(tok, "{sentence} It was [MASK].", ["a good film", "a badly made film"], 9)
    ids = {t: i for i, t in enumerate(VOCAB)}
    expected = [
        ["[CLS]", "a", "good", "film", "it", "was", "[MASK]", ".", "[SEP]"],
        ["[CLS]", "a", "bad", "##ly", "it", "was", "[MASK]", ".", "[SEP]"],  # 5 sentence tokens -> 3
    ]
    assert features["token_ids"].tolist() == [[ids[t] for t in row] for row in expected]
    assert features["masked_lm_positions"].tolist() == [[6], [6]]
    assert cut == 1 and features["padding_mask"].all() and not features["segment_ids"].any()
    with pytest.raises(ValueError, match="needs 7 tokens"):
        prompting.encode_cloze(tok, "{sentence} It was [MASK].", ["a"], 6)
    with pytest.raises(ValueError, match="'badly'.*single known token"):
        prompting.Verbalizer("good,badly").single_token_ids(tok)


def label_words(vocab_path):
    """Two whole-word tokens of the generated vocabulary to use as label words."""
    words = [w for w in vocab_path.read_text().split() if w.isalpha() and len(w) >= 4]
    return words[:2]


def test_zero_shot_cloze_equals_transformers_mlm_logits(hf_bert_dirs, vocab_file):  # noqa: F811  (pytest fixtures imported from test_pretrained)
    path = hf_bert_dirs["BertForPreTraining"]
    texts = sentences()[:12]
    verbalizer = prompting.Verbalizer(label_words(vocab_file))
    template = "{sentence} It was [MASK]."
    tokenizer = load_tokenizer(path)
    model = prompting.cloze_classifier(BertPretrainer.from_pretrained(path),
                                       verbalizer.single_token_ids(tokenizer))
    features, cut = prompting.encode_cloze(tokenizer, template, texts, 64)
    ours = model.predict_on_batch(features)

    ref_tok = T.BertTokenizer.from_pretrained(str(path))
    ref = T.BertForPreTraining.from_pretrained(str(path)).eval()
    batch = ref_tok([template.replace("{sentence}", t) for t in texts], padding=True, return_tensors="pt")
    assert cut == 0
    ref_ids = batch["input_ids"].numpy()
    for row, mask_row in zip(features["token_ids"], features["padding_mask"]):
        assert row[mask_row].tolist() in [r[r != 0].tolist() for r in ref_ids]
    assert (features["token_ids"] == ref_ids[:, : features["token_ids"].shape[1]]).all()
    with torch.no_grad():
        logits = ref(**batch).prediction_logits.numpy()
    rows, cols = np.nonzero(ref_ids == ref_tok.mask_token_id)
    label_ids = ref_tok.convert_tokens_to_ids(verbalizer.words)
    expected = logits[rows, cols][:, label_ids]
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def gpt2_log_likelihood(ref, ref_tok, prefix, continuation):
    """log P(continuation | prefix) under a transformers GPT-2, tokenizing the whole text at once."""
    full = ref_tok(prefix + continuation)["input_ids"]
    n = len(ref_tok(prefix)["input_ids"])
    with torch.no_grad():
        log_probs = torch.log_softmax(ref(torch.tensor([full])).logits[0].double(), -1).numpy()
    return sum(log_probs[t - 1, full[t]] for t in range(n, len(full)))


def test_in_context_scores_equal_transformers_gpt2(hf_gpt2_dir):  # noqa: F811  (pytest fixtures imported from test_pretrained)
    template = prompting.PromptTemplate("{sentence}: [MASK]")  # short: this GPT-2 has 64 positions
    verbalizer = prompting.Verbalizer("positive,negative")  # several BPE tokens each in this vocabulary
    tokenizer = load_tokenizer(hf_gpt2_dir)
    model = GptCausalLM.from_pretrained(hf_gpt2_dir, tokenizer=tokenizer)
    demos = [("fine", 0), ("dull", 1)]
    prefixes = prompting.in_context_prefixes(template, verbalizer, demos, ["the best", "slow", "ok"])
    assert prefixes[0] == "fine: positive\ndull: negative\nthe best:"
    ours = prompting.label_log_likelihoods(model, tokenizer, template, verbalizer, prefixes, batch_size=4)

    ref = T.GPT2LMHeadModel.from_pretrained(str(hf_gpt2_dir)).eval()
    ref_tok = T.GPT2Tokenizer.from_pretrained(str(hf_gpt2_dir))
    assert max(len(ref_tok(" " + w)["input_ids"]) for w in verbalizer.words) > 1
    expected = [[gpt2_log_likelihood(ref, ref_tok, p, " " + w) for w in verbalizer.words] for p in prefixes]
    np.testing.assert_allclose(ours, expected, atol=2e-4)


def toy_pretrained(path):
    """A random tiny tfllm BertPretrainer folder whose vocabulary covers the toy sentiment data."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "it", "."] + FILLER + POSITIVE + NEGATIVE
    backbone = Bert(vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
                    max_sequence_length=32, dropout=0.0)
    BertPretrainer(backbone).save_pretrained(path, tokenizer=WordPieceTokenizer(vocab))
    return path


def run_prompt_recipe(tmp_path, *extra):
    return run_script("recipes/prompt_classify.py",
                      f"--train_file={tmp_path / 'train.tsv'}", f"--eval_file={tmp_path / 'dev.tsv'}",
                      "--strategy=cpu", "--log_every=20", *extra)


def test_recipe_few_shot_prompt_tuning_learns(tmp_path):
    """PET-style tuning of a random tiny MLM on 32 examples per class generalises (chance is 0.5).

    A pretrained MLM is what makes 16 shots enough; a random one memorises
    them (train accuracy 1.0) and generalises only partly, hence the bar.
    """
    write_toy_tsv(tmp_path / "train.tsv", 400, seed=0)
    write_toy_tsv(tmp_path / "dev.tsv", 200, seed=1)
    pretrained = toy_pretrained(tmp_path / "pretrained")
    run_prompt_recipe(tmp_path, f"--pretrained={pretrained}", "--verbalizer=bad,good", "--shots=32",
                      "--train_steps=150", "--learning_rate=3e-3", "--sequence_length=24", "--weight_decay=0",
                      f"--model_dir={tmp_path / 'pet'}")
    results = json.loads((tmp_path / "pet" / "prompt_results.json").read_text())
    assert results["examples"] == 200 and results["method"] == "prompt" and results["shots_per_class"] == 32
    assert results["accuracy"] >= 0.75, results


def test_recipe_gpt_in_context_accuracy_equals_transformers(hf_gpt2_dir, tmp_path):  # noqa: F811  (pytest fixtures imported from test_pretrained)
    # One-word reviews: this GPT-2's 64 positions hold a demonstration per class and the query.
    for name, words in (("train.tsv", POSITIVE[:3] + NEGATIVE[:3]), ("dev.tsv", POSITIVE + NEGATIVE)):
        rows = [f"{int(w in POSITIVE)}\t{w}\n" for w in words]
        (tmp_path / name).write_text("label\tsentence\n" + "".join(rows))
    template = "{sentence} It was [MASK]"
    proc = run_prompt_recipe(tmp_path, f"--pretrained={hf_gpt2_dir}", "--model=gpt", "--shots=1",
                             f"--template={template}", "--verbalizer=bad,good", "--seed=5", "--calibrate",
                             f"--model_dir={tmp_path / 'icl'}")
    results = json.loads((tmp_path / "icl" / "prompt_results.json").read_text())

    # The same prompt the recipe builds: 1 demonstration per class (seed 5), in a seeded order.
    texts, labels = read_labeled_text(str(tmp_path / "train.tsv"))
    picked = prompting.sample_per_class(labels, 1, 2, seed=5)
    order = np.random.default_rng(5).permutation(len(picked))
    context = "".join(f"{texts[picked[i]]} It was {['bad', 'good'][labels[picked[i]]]}\n" for i in order)
    eval_texts, eval_labels = read_labeled_text(str(tmp_path / "dev.tsv"))
    ref = T.GPT2LMHeadModel.from_pretrained(str(hf_gpt2_dir)).eval()
    ref_tok = T.GPT2Tokenizer.from_pretrained(str(hf_gpt2_dir))

    def scores(texts):
        return [[gpt2_log_likelihood(ref, ref_tok, f"{context}{t} It was", f" {w}") for w in ("bad", "good")]
                for t in texts]

    # Contextual calibration by the content-free queries "N/A", "" and "[MASK]" in the same prompt.
    calibrated = prompting.calibrate(scores(eval_texts), scores(["N/A", "", "[MASK]"]))
    assert results["method"] == "in_context" and results["examples"] == 12 and results["calibrated"]
    assert "lost their oldest tokens" not in proc.stderr
    assert results["accuracy"] == pytest.approx(float((np.argmax(calibrated, 1) == eval_labels).mean()))


def test_contextual_calibration_matches_the_paper_formula():
    """softmax(W p) with W = diag(p_cf)^-1 (Zhao et al. 2021, eq. 2 with b = 0), p_cf the mean content-free p."""
    rng = np.random.default_rng(0)
    scores, content_free = rng.normal(size=(6, 3)), rng.normal(size=(3, 3))

    def softmax(z):
        return np.exp(z) / np.exp(z).sum(-1, keepdims=True)

    p_cf = softmax(content_free).mean(0)
    expected = softmax(scores) / p_cf
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(prompting.calibrate(scores, content_free)), expected, rtol=1e-12)
    # A lone content-free input is then scored uniformly; a constant shift of the scores changes nothing.
    np.testing.assert_allclose(np.exp(prompting.calibrate(content_free[:1], content_free[:1])), 1 / 3, rtol=1e-12)
    np.testing.assert_allclose(prompting.calibrate(scores + 5, content_free), prompting.calibrate(scores, content_free))
