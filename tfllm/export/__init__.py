"""SavedModel export for TF Serving: raw strings in, named outputs out, tokenizer in the graph.

One function per head, all writing `export_dir/<model_name>/<version>/`
atomically with `assets.extra/tf_serving_warmup_requests`:

| head | function | signature inputs -> outputs |
| --- | --- | --- |
| classifier | `export_classifier` | `text` -> `probabilities`, `label`, `label_name` |
| embeddings | `export_embeddings` | `text` -> `pooled_output`, `mean_pooled_output` |
| tagger | `export_tagger` | `text` -> `words`, `tags`, `scores`, `num_words` |
| span_qa | `export_span_qa` | `question`, `context` -> `answer`, `score`, `answer_start`, `answer_end` |
| gpt (any causal LM) | `export_gpt` | `prompt` -> `generated` (+ `generate` signature with options) |
| translator | `export_translator` | `source` -> `translation`, `score` (beam search in the graph) |

`export_folder(model_dir, export_dir)` exports whatever a model folder holds,
as `EXPORTS` (the one table of heads) allows its class; tools/export.py runs it.
"""

from tfllm.export.classifier_export import ClassifierServingModule
from tfllm.export.classifier_export import export_classifier
from tfllm.export.embeddings_export import EmbeddingsServingModule
from tfllm.export.embeddings_export import export_embeddings
from tfllm.export.folder_export import EXPORTS
from tfllm.export.folder_export import HEADS
from tfllm.export.folder_export import export_folder
from tfllm.export.gpt_export import GptGenerationServingModule
from tfllm.export.gpt_export import export_gpt
from tfllm.export.serving_layout import WARMUP_FILE
from tfllm.export.serving_layout import read_warmup_requests
from tfllm.export.serving_layout import save_atomically
from tfllm.export.serving_layout import version_dir
from tfllm.export.span_qa_export import SpanQAServingModule
from tfllm.export.span_qa_export import export_span_qa
from tfllm.export.tagger_export import TaggerServingModule
from tfllm.export.tagger_export import export_tagger
from tfllm.export.translation_export import TranslationServingModule
from tfllm.export.translation_export import export_translator
