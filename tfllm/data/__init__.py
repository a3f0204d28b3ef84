"""Input data: readers for labeled text files and `tf.data` pipelines."""

from tfllm.data.batching import default_bucket_boundaries
from tfllm.data.conll import read_conll
from tfllm.data.errors import DataError
from tfllm.data.parallel_text import read_parallel_text
from tfllm.data.parallel_text import translation_dataset
from tfllm.data.text_classification import classification_dataset
from tfllm.data.text_classification import read_labeled_text
from tfllm.data.text_classification import read_table_column
from tfllm.data.text_classification import read_text_examples
from tfllm.data.text_classification import steps_per_epoch
