"""Task metrics computed outside the training graph: entity-level F1 (CoNLL) and SQuAD exact match/F1."""

from tfllm.metrics.entities import entity_scores
from tfllm.metrics.squad import squad_scores
