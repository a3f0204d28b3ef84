"""Task metrics computed outside the training graph: GLUE sentence metrics, entity-level F1 (CoNLL) and SQuAD
exact match/F1."""

from tfllm.metrics.classification import classification_scores
from tfllm.metrics.classification import regression_scores
from tfllm.metrics.entities import entity_scores
from tfllm.metrics.squad import squad_scores
