"""Model classes (backbones and task heads) and the one folder format they are saved in.

`load(folder)` rebuilds whatever a recipe's --model_dir or `save_pretrained`
folder holds; `<Class>.from_pretrained(folder)` gives that class from a
tfllm, Hugging Face or Google BERT folder (see `tfllm.models.pretrained`).
"""

from tfllm.models.bert.bert_backbone import Bert
from tfllm.models.bert.bert_classifier import BertClassifier
from tfllm.models.bert.bert_masked_lm import BertMaskedLM
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.bert.bert_pretrainer import BertPretrainer
from tfllm.models.bert.bert_span_qa import BertSpanQA
from tfllm.models.bert.bert_token_classifier import BertTokenClassifier
from tfllm.models.bert.electra_discriminator import ElectraDiscriminator
from tfllm.models.bert.roberta_preprocessor import RobertaPreprocessor
from tfllm.models.gpt.gpt_backbone import Gpt
from tfllm.models.gpt.gpt_causal_lm import GptCausalLM
from tfllm.models.llama.llama_backbone import Llama
from tfllm.models.llama.llama_causal_lm import LlamaCausalLM
from tfllm.models.pretrained import LoadedModel
from tfllm.models.pretrained import load
from tfllm.models.pretrained import save_config
from tfllm.models.pretrained import save_pretrained
from tfllm.models.pretrained import save_weights
from tfllm.models.seq2seq.seq2seq_transformer import Seq2SeqTransformer
from tfllm.models.weight_casting import cast_weights
