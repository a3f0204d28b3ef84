"""Prompt-based classification: cloze questions for masked LMs, in-context prompts for causal LMs.

- `PromptTemplate("{sentence} It was [MASK].")` and `Verbalizer("terrible,great")`
  turn an example into a cloze question and classes into label words.
- `cloze_classifier(pretrainer, label_ids)` + `encode_cloze(...)`: zero-shot
  with a `BertPretrainer`, or PET-style few-shot fine-tuning of the same model.
- `in_context_prefixes(...)` + `label_log_likelihoods(...)`: k demonstrations
  and the query for a `GptCausalLM`, each class scored by its word's likelihood.

- `calibrate(scores, content_free_scores)`: contextual calibration, which
  removes a prompt's prior toward some label words.

`recipes/prompt_classify.py` runs all of them on a labelled TSV.
"""

from tfllm.prompting.calibration import CONTENT_FREE_INPUTS
from tfllm.prompting.calibration import calibrate
from tfllm.prompting.cloze import LabelWordLogits
from tfllm.prompting.cloze import cloze_classifier
from tfllm.prompting.cloze import encode_cloze
from tfllm.prompting.in_context import in_context_prefixes
from tfllm.prompting.in_context import label_log_likelihoods
from tfllm.prompting.templates import PromptTemplate
from tfllm.prompting.templates import Verbalizer
from tfllm.prompting.templates import sample_per_class
