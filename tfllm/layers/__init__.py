"""Keras 3 layers for Transformer language models."""

from tfllm.layers.attention import MultiHeadAttention
from tfllm.layers.attention import causal_attention_mask
from tfllm.layers.attention import padding_to_attention_mask
from tfllm.layers.attention import scaled_dot_product_attention
from tfllm.layers.attention import zero_key_value_cache
from tfllm.layers.einsum_dense import EinsumDense
from tfllm.layers.embeddings import TransformerEmbedding
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.feed_forward import GatedFeedForward
from tfllm.layers.grouped_query_attention import GroupedQueryAttention
from tfllm.layers.position_embedding import LearnedPositionEmbedding
from tfllm.layers.position_embedding import SinusoidalPositionEmbedding
from tfllm.layers.rms_norm import RMSNorm
from tfllm.layers.transformer_decoder import TransformerDecoderBlock
from tfllm.layers.transformer_encoder import TransformerEncoderBlock
