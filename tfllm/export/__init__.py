"""SavedModel export for TF Serving: raw strings in, named outputs out, tokenizer in the graph."""

from tfllm.export.classifier_export import ClassifierServingModule
from tfllm.export.classifier_export import export_classifier
from tfllm.export.serving_layout import save_atomically
from tfllm.export.serving_layout import version_dir
