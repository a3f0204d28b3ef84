"""Per-example loss and metrics for span extraction, in the Trainer's form fn(labels, outputs) -> [B].

labels = `{"start_positions", "end_positions"}` (int `[B]`), outputs =
`BertSpanQA`'s `{"start_logits", "end_logits"}` (float `[B, T]`).
"""


from tfllm.training.losses import classification_accuracy
from tfllm.training.losses import classification_loss


def span_loss(labels, outputs):
    """Mean of the start and end cross-entropies per example, as BERT's run_squad."""
    start = classification_loss(labels["start_positions"], outputs["start_logits"])
    end = classification_loss(labels["end_positions"], outputs["end_logits"])
    return (start + end) / 2.0


def start_accuracy(labels, outputs):
    """1.0 where the argmax start is the target start token."""
    return classification_accuracy(labels["start_positions"], outputs["start_logits"])


def end_accuracy(labels, outputs):
    """1.0 where the argmax end is the target end token."""
    return classification_accuracy(labels["end_positions"], outputs["end_logits"])

