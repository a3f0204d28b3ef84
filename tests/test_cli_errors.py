"""Every recipe and tool reports bad input in one line (`error: ...`, exit status 2), without a traceback."""

from pathlib import Path

import pytest

from tests.run_script import run_script
from tfllm.cli import _reporting_errors
from tfllm.models import Bert
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers.char_tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def cases(tmp):
    missing = tmp / "missing.txt"
    missing_tsv = tmp / "missing.tsv"
    empty = tmp / "empty_dir"
    return {
        "recipes/classify.py": ([f"--train_file={missing_tsv}", f"--model_dir={tmp / 'm1'}"],
                                f"{missing_tsv}: file not found"),
        "recipes/tag.py": ([f"--train_file={missing}", f"--model_dir={tmp / 'm2'}"], f"{missing}: file not found"),
        "recipes/qa.py": ([f"--train_file={missing}", f"--model_dir={tmp / 'm3'}"], f"{missing}: file not found"),
        "recipes/pretrain_bert.py": ([f"--vocab_file={missing}", f"--text_files={missing}",
                                      f"--model_dir={tmp / 'm4'}"], str(missing)),
        "recipes/train_gpt.py": ([f"--text_file={missing}", f"--model_dir={tmp / 'm5'}"], str(missing)),
        "recipes/translate.py": ([f"--train_source={missing}", f"--train_target={missing}",
                                  f"--model_dir={tmp / 'm6'}"], f"{missing}: file not found"),
        "recipes/generate.py": ([f"--model_dir={empty}"], f"{empty}/config.json: not found"),
        "recipes/prompt_classify.py": ([f"--pretrained={empty}", f"--train_file={missing_tsv}",
                                        f"--eval_file={missing_tsv}", f"--model_dir={tmp / 'm7'}",
                                        "--template={sentence} [MASK]", "--verbalizer=bad,good"],
                                       f"{missing_tsv}: file not found"),
        "tools/build_vocab.py": ([f"--input={missing}", f"--output={tmp / 'v.txt'}"], str(missing)),
        "tools/build_corpus.py": ([f"--text={missing}", f"--output={tmp / 'c.txt'}"], f"{missing}: file not found"),
        "tools/create_pretraining_data.py": ([f"--input_file={missing}", f"--vocab_file={missing}",
                                              f"--output_file={tmp / 'o'}"], "matches no file"),
        "tools/convert_checkpoint.py": (["--from=hf", "--model=bert", str(empty), str(tmp / "o2")],
                                        "no pretrained model found"),
        "tools/export.py": ([str(empty), str(tmp / "out")], "no pretrained model found"),
        "tools/query_savedmodel.py": ([str(empty), "a sentence"], "SavedModel file does not exist"),
        "tools/rest_predict.py": ([str(empty), "{}"], "SavedModel file does not exist"),
        "tools/serve_bench.py": ([str(empty)], "not a SavedModel directory"),
        "tools/benchmark.py": (["no-such-benchmark"], "usage: benchmark.py"),
        "tools/glue_transformers.py": ([f"--train_file={missing_tsv}", f"--eval_file={missing_tsv}",
                                        f"--init_checkpoint={empty}"], f"{missing_tsv}: file not found"),
        "tools/ner_transformers.py": ([f"--train_file={missing}", f"--eval_file={missing}",
                                       f"--init_checkpoint={empty}"], f"{missing}: file not found"),
        "tools/qa_transformers.py": ([f"--train_file={missing}", f"--init_checkpoint={empty}"],
                                     f"{missing}: file not found"),
    }


def run_all(jobs):
    """Each (script, args) run as `python SCRIPT ARGS` (in the tests' script process: see tests/run_script.py)."""
    procs = [run_script(script, *args, check=False) for script, args in jobs]
    return [{"exit": proc.returncode, "stderr": proc.stderr} for proc in procs]


def test_every_recipe_and_tool_lists_a_case():
    scripts = {str(p.relative_to(ROOT)) for p in [*ROOT.glob("recipes/*.py"), *ROOT.glob("tools/*.py")]}
    helpers = {"recipes/common.py", "tools/savedmodel_cli.py"}
    assert scripts - helpers == set(cases(Path("/tmp")))


BAD_FLAGS = ["--batch_size=0", "--learning_rate=nan", "--num_cpu_devices=3"]


def more_cases(tmp):
    """[(script, args, message)]: bad input that needs files (an empty merges.txt, a header with no rows, a
    vocabulary without BERT's special tokens, ...) or a second case for a script."""
    (tmp / "text.txt").write_text("hello world\n\nanother text\n")
    (tmp / "vocab.json").write_text('{"h": 0, "e": 1, "<|endoftext|>": 2}')
    (tmp / "merges.txt").write_text("")
    (tmp / "list.json").write_text('["h", "e"]')
    (tmp / "train.tsv").write_text("sentence\tlabel\nthe film\t1\na film\t0\n")
    (tmp / "header_only.tsv").write_text("sentence\tlabel\n")
    (tmp / "words.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nfilm\n")  # no [MASK]
    (tmp / "a_file").write_text("not a folder\n")
    (tmp / "a_folder.tsv").mkdir()
    (tmp / "conll.txt").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\nwalks O\n")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "film"]
    Bert(vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
         max_sequence_length=16).save_pretrained(tmp / "short_bert", tokenizer=WordPieceTokenizer(vocab))
    train = f"--train_file={tmp / 'train.tsv'}"
    return [
        ("recipes/train_gpt.py", [f"--text_file={tmp / 'text.txt'}", "--tokenizer=bpe",
                                  f"--bpe_vocab={tmp / 'vocab.json'}", f"--bpe_merges={tmp / 'merges.txt'}",
                                  f"--model_dir={tmp / 'm8'}"],
         f"{tmp / 'merges.txt'}: no merge rules"),
        ("recipes/classify.py", [train, f"--init_checkpoint={tmp / 'short_bert'}", "--max_seq_length=64",
                                 f"--model_dir={tmp / 'm9'}"],
         "--max_seq_length=64 is longer than"),
        ("recipes/classify.py", [f"--train_file={tmp / 'header_only.tsv'}", f"--model_dir={tmp / 'm10'}"],
         f"{tmp / 'header_only.tsv'}: no rows after the header"),
        ("recipes/classify.py", [f"--train_file={tmp / 'a_folder.tsv'}", f"--model_dir={tmp / 'm11'}"],
         f"{tmp / 'a_folder.tsv'}: a folder, expected a file"),
        ("recipes/classify.py", [train, f"--model_dir={tmp / 'a_file'}"],
         f"--model_dir={tmp / 'a_file'} is a file; expected a folder"),
        ("recipes/classify.py", [train, f"--vocab_file={tmp / 'text.txt'}", f"--model_dir={tmp / 'm12'}"],
         f"{tmp / 'text.txt'}: no [PAD] [UNK] [CLS] [SEP] among its 3 tokens"),
        ("recipes/pretrain_bert.py", [f"--text_files={tmp / 'text.txt'}", f"--vocab_file={tmp / 'words.txt'}",
                                      f"--model_dir={tmp / 'm13'}"],
         f"{tmp / 'words.txt'}: no [MASK] among its 6 tokens"),
        ("recipes/translate.py", [f"--train_source={tmp / 'text.txt'}", f"--train_target={tmp / 'text.txt'}",
                                  "--vocab_size=500", f"--model_dir={tmp / 'm14'}"],
         "a 500-piece SentencePiece vocabulary is too large for these texts"),
        ("recipes/translate.py", [f"--train_source={tmp / 'text.txt'}", f"--train_target={tmp / 'text.txt'}",
                                  f"--spm_model={tmp / 'words.txt'}", f"--model_dir={tmp / 'm15'}"],
         f"{tmp / 'words.txt'}: not a SentencePiece model"),
        ("recipes/translate.py", ["--mode=translate", f"--model_dir={tmp / 'short_bert'}",
                                  f"--input_file={tmp / 'text.txt'}"],
         f"--model_dir={tmp / 'short_bert'} holds a Bert, not a Seq2SeqTransformer"),
        ("recipes/translate.py", ["--mode=evaluate", f"--model_dir={tmp / 'short_bert'}"],
         "--mode=evaluate needs --eval_source and --eval_target"),
        ("recipes/prompt_classify.py", [f"--pretrained={tmp / 'short_bert'}", f"--eval_file={tmp / 'train.tsv'}",
                                        "--verbalizer=the,a", f"--model_dir={tmp / 'm16'}"],
         "holds a Bert without a BertPretrainer head"),
        ("recipes/tag.py", [f"--train_file={tmp / 'conll.txt'}", f"--eval_file={tmp / 'missing.txt'}",
                            f"--model_dir={tmp / 'm17'}"],
         f"{tmp / 'missing.txt'}: file not found"),  # before training, not after it
        ("recipes/qa.py", [f"--train_file={tmp / 'text.txt'}", "--train_articles=0-1", f"--model_dir={tmp / 'm18'}"],
         "--train_articles='0-1': expected START:END article indices"),
        ("recipes/train_gpt.py", [f"--text_file={tmp / 'text.txt'}", "--num_heads=3", "--hidden_dim=16",
                                  f"--model_dir={tmp / 'm19'}"],
         "--hidden_dim must divide by --num_heads"),
        ("tools/create_pretraining_data.py", [f"--input_file={tmp / 'text.txt'}", f"--vocab_file={tmp / 'words.txt'}",
                                              f"--output_file={tmp / 'pt.tfrecord'}"],
         f"{tmp / 'words.txt'}: no [MASK] among its 6 tokens"),
        ("recipes/train_gpt.py", [f"--text_file={tmp / 'text.txt'}", "--tokenizer=bpe",
                                  f"--bpe_vocab={tmp / 'list.json'}", f"--bpe_merges={tmp / 'merges.txt'}",
                                  f"--model_dir={tmp / 'm20'}"],
         f"{tmp / 'list.json'}: expected a JSON object of token -> id"),
        ("tools/build_vocab.py", ["--type=bpe", f"--input={tmp / 'text.txt'}", f"--output={tmp / 'a_file'}",
                                  "--vocab_size=300"],
         f"{tmp / 'a_file'} is a file; vocab.json and merges.txt are written into a folder"),
    ]


def test_bad_input_gives_one_line_and_exit_2_and_bad_flags_are_named(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    table = cases(tmp_path)
    jobs = [(script, args) for script, (args, _) in table.items()]
    more = more_cases(tmp_path)
    jobs += [("recipes/classify.py", [f"--train_file={tmp_path / 'x.tsv'}", f"--model_dir={tmp_path}", flag])
             for flag in BAD_FLAGS]
    jobs += [(script, args) for script, args, _ in more]
    procs = run_all(jobs)
    assert len(procs) == len(jobs)
    problems = []
    for (script, (_, message)), proc in zip(table.items(), procs):
        errors = [line for line in proc["stderr"].splitlines() if line.startswith("error: ")]
        if proc["exit"] != 2 or len(errors) != 1 or message not in errors[0] or "Traceback" in proc["stderr"]:
            problems.append(f"{script}: exit {proc['exit']}, {errors or proc['stderr'][-1500:]}")
    for (script, _, message), proc in zip(more, procs[len(table) + len(BAD_FLAGS):]):
        errors = [line for line in proc["stderr"].splitlines() if line.startswith("error: ")]
        if proc["exit"] != 2 or len(errors) != 1 or message not in errors[0] or "Traceback" in proc["stderr"]:
            problems.append(f"{script}: exit {proc['exit']}, {errors or proc['stderr'][-1500:]}")
    for flag, proc in zip(BAD_FLAGS, procs[len(table):]):
        # absl refuses these while parsing flags; tfllm.cli reports them as any other bad input.
        errors = [line for line in proc["stderr"].splitlines() if line.startswith("error: ")]
        if proc["exit"] != 2 or len(errors) != 1 or flag.split("=")[0] not in errors[0] or \
                "Traceback" in proc["stderr"]:
            problems.append(f"{flag}: exit {proc['exit']}, {errors or proc['stderr'][-1500:]}")
    assert not problems, "\n".join(problems)


def test_a_run_too_short_for_one_step_says_why(tmp_path):
    """10 examples at batch 32 are one step an epoch; --epochs=0.5 of that is no step: one line, not the optimizer's."""
    train = tmp_path / "train.tsv"
    train.write_text("label\tsentence\n" + "".join(f"{i % 2}\tsentence number {i}\n" for i in range(10)))
    args = [f"--train_file={train}", f"--model_dir={tmp_path / 'm'}", "--preset=bert_nano", "--vocab_size=50",
            "--batch_size=32", "--epochs=0.5", "--strategy=cpu"]
    [proc] = run_all([("recipes/classify.py", args)])
    errors = [line for line in proc["stderr"].splitlines() if line.startswith("error: ")]
    assert proc["exit"] == 2 and "Traceback" not in proc["stderr"], proc["stderr"][-3000:]
    assert errors == ["error: --epochs=0.5 of 10 training examples at --batch_size=32 (1 step an epoch) "
                      "gives no training step; raise --epochs"]


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    """Ctrl-C outside training (or a second one inside): `interrupted`, exit 128 + SIGINT, no traceback."""

    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        _reporting_errors(main)(["script.py"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_bad_input_inside_a_keras_layer_is_one_line_without_keras_wrapping(capsys):
    """Keras wraps an error raised in a layer's call() ("Exception encountered when calling ...", the arguments,
    bold escapes): the line keeps only tfllm's message."""

    def main(argv):
        CharTokenizer.from_text("ab")(["abz"])

    with pytest.raises(SystemExit) as exit_info:
        _reporting_errors(main)(["script.py"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == \
        "error: the text has 1 character(s) outside this model's 2-character vocabulary: 'z'\n"
