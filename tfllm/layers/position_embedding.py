"""Learned and sinusoidal position embeddings.

Both come from keras-hub, which already implements them well (with a
`start_index` for incremental decoding); tfllm re-exports them under the
names used throughout this package.
"""

from keras_hub.layers import PositionEmbedding as LearnedPositionEmbedding
from keras_hub.layers import SinePositionEncoding as SinusoidalPositionEmbedding

__all__ = ["LearnedPositionEmbedding", "SinusoidalPositionEmbedding"]
