"""Model classes: backbones and task heads."""

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.bert.bert_classifier import BertClassifier
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.bert.bert_pretrainer import BertPretrainer
from tfllm.models.bert.bert_span_qa import BertSpanQA
from tfllm.models.bert.bert_token_classifier import BertTokenClassifier
from tfllm.models.gpt.gpt_backbone import Gpt
from tfllm.models.gpt.gpt_causal_lm import GptCausalLM
from tfllm.models.seq2seq.seq2seq_transformer import Seq2SeqTransformer
